"""The dashboard's URL, behind the admin's login (admin_view: staff only)."""

from django.contrib import admin
from django.urls import path

from webhooks.console.views import dashboard

urlpatterns = [path("", admin.site.admin_view(dashboard), name="admin-dashboard")]
