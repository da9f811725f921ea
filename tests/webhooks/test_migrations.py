"""Data migrations in webhooks/migrations, run against today's tables."""

import importlib
from types import SimpleNamespace

from django.apps import apps
from django.contrib.auth.models import Group, Permission, User
from django.db import connection

retry_permission = importlib.import_module("webhooks.migrations.0003_delivery_retry_permission")


def test_whoever_could_retry_through_change_delivery_keeps_the_right_to_retry(db):
    # Given an upgrade: retry_delivery not yet created, change_delivery held by some.
    Permission.objects.filter(codename="retry_delivery").delete()
    change = Permission.objects.get(content_type__app_label="webhooks", codename="change_delivery")
    team = Group.objects.create(name="on-call")
    team.permissions.add(change)
    operator = User.objects.create_user("operator", is_staff=True)
    operator.user_permissions.add(change)
    viewer = User.objects.create_user("viewer", is_staff=True)

    retry_permission.grant_retry_to_change_holders(apps, SimpleNamespace(connection=connection))

    retry = Permission.objects.get(content_type__app_label="webhooks", codename="retry_delivery")
    assert retry.name == "Can retry deliveries"
    assert list(retry.group_set.all()) == [team]
    assert list(retry.user_set.all()) == [operator]
    assert User.objects.get(pk=operator.pk).has_perm("webhooks.retry_delivery")
    assert not User.objects.get(pk=viewer.pk).has_perm("webhooks.retry_delivery")


def test_a_fresh_database_has_nothing_to_carry_over(db):
    Permission.objects.filter(content_type__app_label="webhooks").delete()

    retry_permission.grant_retry_to_change_holders(apps, SimpleNamespace(connection=connection))

    assert not Permission.objects.filter(content_type__app_label="webhooks").exists()
