"""What every page of the webhooks admin shares: its stylesheet, the status badge and
the read-only base of the delivery and attempt logs."""

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from webhooks.console import render

CONSOLE_MEDIA = forms.Media(css={"all": ["webhooks/console.css"]})
status_badge = render.status_badge


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
