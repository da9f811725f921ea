"""Every admin action and custom admin view checks a permission of its own.

A staff user with only the `view_*` permissions (or with every permission but the one an
action needs) is neither offered the action nor able to run it by forging the changelist
POST, and nothing changes. The tables below list every action and custom view; the
registry tests fail when one is added without a permission or without a row here.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.actions import delete_selected
from django.contrib.auth.models import Permission, User
from django.db.models import Model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import events
from ctrlplane.tenants.models import ApiKey, Tenant
from ctrlplane.tenants.services import api_key_create
from webhooks.models import Delivery, DeliveryStatus, Webhook
from webhooks.services import webhook_create, webhook_disable, webhook_secret_current

URL = "https://hooks.example.com/in"


def _hook(tenant: Tenant) -> Webhook:
    return webhook_create(tenant=tenant, url=URL, event_types=["deploy.*"])


def _disabled_hook(tenant: Tenant) -> Webhook:
    hook = _hook(tenant)
    webhook_disable(webhook=hook, reason="test", notify=False)
    return hook


def _exhausted_delivery(tenant: Tenant) -> Delivery:
    _hook(tenant)
    events.publish("deploy.started", tenant=tenant)
    delivery = Delivery.objects.get()
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.EXHAUSTED)
    return delivery


@dataclass(frozen=True)
class ActionCase:
    admin: str  # the admin's URL prefix, app_model
    action: str
    permission: str
    target: Callable[[Tenant], Model]  # the object to select
    state: Callable[[Any], object]  # what the action changes

    def __str__(self) -> str:
        return f"{self.admin}.{self.action}"


ACTIONS = [
    ActionCase(
        "tenants_tenant",
        "create_api_key",
        "tenants.create_api_key",
        lambda tenant: tenant,
        lambda tenant: ApiKey.objects.filter(tenant=tenant).count(),
    ),
    ActionCase(
        "tenants_apikey",
        "revoke",
        "tenants.change_apikey",
        lambda tenant: api_key_create(tenant=tenant).api_key,
        lambda key: ApiKey.objects.get(pk=key.pk).revoked_at,
    ),
    ActionCase(
        "webhooks_webhook",
        "send_test_event",
        "webhooks.change_webhook",
        _hook,
        lambda hook: Delivery.objects.filter(webhook=hook, event_type="webhook.test").count(),
    ),
    ActionCase(
        "webhooks_webhook",
        "rotate_secret",
        "webhooks.change_webhook",
        _hook,
        lambda hook: webhook_secret_current(webhook=hook),
    ),
    ActionCase(
        "webhooks_webhook",
        "disable",
        "webhooks.change_webhook",
        _hook,
        lambda hook: Webhook.objects.get(pk=hook.pk).active,
    ),
    ActionCase(
        "webhooks_webhook",
        "enable",
        "webhooks.change_webhook",
        _disabled_hook,
        lambda hook: Webhook.objects.get(pk=hook.pk).active,
    ),
    ActionCase(
        "webhooks_delivery",
        "retry_selected",
        "webhooks.retry_delivery",
        _exhausted_delivery,
        lambda delivery: Delivery.objects.values_list("status", "next_trigger").get(pk=delivery.pk),
    ),
]


@dataclass(frozen=True)
class ViewCase:
    url_name: str  # the admin URL name, without the "admin:" namespace
    permission: str
    target: Callable[[Tenant], Model]
    secret: Callable[[Any], str]  # what the page reveals
    linked_from: str  # the admin page that links to it (URL name, takes the same pk)

    def __str__(self) -> str:
        return self.url_name


VIEWS = [
    ViewCase(
        "webhooks_webhook_secret",
        "webhooks.change_webhook",
        _hook,
        lambda hook: webhook_secret_current(webhook=hook),
        "webhooks_webhook_change",
    ),
]


def _hook_that_missed_an_event(tenant: Tenant) -> Webhook:
    return _exhausted_delivery(tenant).webhook


@dataclass(frozen=True)
class ButtonCase:
    """A button on an object's page: a POST form to a custom admin URL."""

    url_name: str
    permission: str
    target: Callable[[Tenant], Model]
    state: Callable[[Any], object]  # what the button changes
    linked_from: str  # the page that shows the button (URL name, takes the same pk)
    data: Callable[[], dict[str, str]] = dict

    def __str__(self) -> str:
        return self.url_name


def _recover_since() -> dict[str, str]:
    since = timezone.now() - timedelta(hours=1)
    return {"since": since.strftime("%Y-%m-%dT%H:%M:%S")}


BUTTONS = [
    ButtonCase(
        "webhooks_webhook_send_test",
        "webhooks.change_webhook",
        _hook,
        lambda hook: Delivery.objects.filter(webhook=hook, event_type="webhook.test").count(),
        "webhooks_webhook_change",
    ),
    ButtonCase(
        "webhooks_webhook_rotate_secret",
        "webhooks.change_webhook",
        _hook,
        lambda hook: webhook_secret_current(webhook=hook),
        "webhooks_webhook_change",
    ),
    ButtonCase(
        "webhooks_webhook_disable",
        "webhooks.change_webhook",
        _hook,
        lambda hook: Webhook.objects.get(pk=hook.pk).active,
        "webhooks_webhook_change",
    ),
    ButtonCase(
        "webhooks_webhook_enable",
        "webhooks.change_webhook",
        _disabled_hook,
        lambda hook: Webhook.objects.get(pk=hook.pk).active,
        "webhooks_webhook_change",
    ),
    ButtonCase(
        "webhooks_webhook_recover",
        "webhooks.change_webhook",
        _hook_that_missed_an_event,
        lambda hook: list(Delivery.objects.filter(webhook=hook).values_list("status", flat=True)),
        "webhooks_webhook_change",
        _recover_since,
    ),
    ButtonCase(
        "webhooks_delivery_retry",
        "webhooks.retry_delivery",
        _exhausted_delivery,
        lambda delivery: Delivery.objects.values_list("status", "next_trigger").get(pk=delivery.pk),
        "webhooks_delivery_change",
    ),
]


def _permission(dotted: str) -> Permission:
    app_label, codename = dotted.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def _staff(client: Client, permissions: Any) -> Client:
    user = User.objects.create_user("operator", "operator@example.com", "pw", is_staff=True)
    user.user_permissions.set(permissions)
    client.force_login(user)
    return client


def _view_only() -> Any:
    return Permission.objects.filter(codename__startswith="view_")


def _all_but(dotted: str) -> Any:
    return Permission.objects.exclude(pk=_permission(dotted).pk)


LESSER = {
    "view-only": lambda case: _view_only(),
    "all-but-it": lambda case: _all_but(case.permission),
}


def _offered(client: Client, case: ActionCase) -> bool:
    response = client.get(reverse(f"admin:{case.admin}_changelist"))
    assert response.status_code == 200
    form = response.context["action_form"]
    choices = [name for name, _ in form.fields["action"].choices] if form else []
    in_page = f'value="{case.action}"' in response.content.decode()
    assert (case.action in choices) == in_page
    return in_page


def _run(client: Client, case: ActionCase, obj: Model) -> Any:
    return client.post(
        reverse(f"admin:{case.admin}_changelist"),
        {"action": case.action, "_selected_action": [str(obj.pk)]},
    )


# -- actions ---------------------------------------------------------------------------


@pytest.mark.parametrize("lesser", LESSER)
@pytest.mark.parametrize("case", ACTIONS, ids=str)
def test_a_lesser_user_is_not_offered_the_action(client, tenant, case, lesser):
    staff = _staff(client, LESSER[lesser](case))
    case.target(tenant)

    assert not _offered(staff, case)


@pytest.mark.parametrize("lesser", LESSER)
@pytest.mark.parametrize("case", ACTIONS, ids=str)
def test_a_forged_post_of_the_action_by_a_lesser_user_changes_nothing(client, tenant, case, lesser):
    staff = _staff(client, LESSER[lesser](case))
    obj = case.target(tenant)
    before = case.state(obj)

    response = _run(staff, case, obj)

    assert response.status_code in (200, 302)
    assert 'id="api-key"' not in response.content.decode()
    assert case.state(obj) == before


@pytest.mark.parametrize("case", ACTIONS, ids=str)
def test_a_user_with_the_permission_runs_the_action(client, tenant, case):
    staff = _staff(client, [*_view_only(), _permission(case.permission)])
    obj = case.target(tenant)
    before = case.state(obj)

    assert _offered(staff, case)
    _run(staff, case, obj)

    assert case.state(obj) != before


def _registered_actions() -> list[tuple[str, str, Any, admin.ModelAdmin[Any]]]:
    found = []
    for model, model_admin in admin.site._registry.items():
        prefix = f"{model._meta.app_label}_{model._meta.model_name}"
        # Every action before any permission filtering: the admin's own and the site's.
        for func, name, _ in model_admin._get_base_actions():  # type: ignore[attr-defined]
            if func is not delete_selected:  # Django's own, gated by "delete"
                found.append((prefix, name, func, model_admin))
    return found


def test_every_admin_action_declares_a_permission_it_can_check():
    for prefix, name, func, model_admin in _registered_actions():
        permissions = getattr(func, "allowed_permissions", ())
        assert permissions, f"{prefix}.{name} declares no allowed_permissions"
        assert "view" not in permissions, f"{prefix}.{name} is open to view-only staff"
        for permission in permissions:
            assert callable(getattr(model_admin, f"has_{permission}_permission", None)), (
                f"{prefix}.{name}: no has_{permission}_permission"
            )


def test_every_admin_action_is_in_the_table():
    registered = {(prefix, name) for prefix, name, _, _ in _registered_actions()}
    assert registered == {(case.admin, case.action) for case in ACTIONS}


# -- custom views ----------------------------------------------------------------------


@pytest.mark.parametrize("lesser", LESSER)
@pytest.mark.parametrize("case", VIEWS, ids=str)
def test_a_lesser_user_gets_no_link_and_a_403_from_the_view(client, tenant, case, lesser):
    staff = _staff(client, LESSER[lesser](case))
    obj = case.target(tenant)
    url = reverse(f"admin:{case.url_name}", args=[obj.pk])

    page = staff.get(reverse(f"admin:{case.linked_from}", args=[obj.pk]))
    assert page.status_code == 200
    assert url not in page.content.decode()
    for response in (staff.get(url), staff.post(url)):
        assert response.status_code == 403
        assert case.secret(obj) not in response.content.decode()


@pytest.mark.parametrize("case", VIEWS, ids=str)
def test_a_user_with_the_permission_opens_the_view(client, tenant, case):
    staff = _staff(client, [*_view_only(), _permission(case.permission)])
    obj = case.target(tenant)
    url = reverse(f"admin:{case.url_name}", args=[obj.pk])

    assert url in staff.get(reverse(f"admin:{case.linked_from}", args=[obj.pk])).content.decode()
    response = staff.get(url)
    assert response.status_code == 200
    assert case.secret(obj) in response.content.decode()


# -- buttons on the pages ---------------------------------------------------------------


@pytest.mark.parametrize("lesser", LESSER)
@pytest.mark.parametrize("case", BUTTONS, ids=str)
def test_a_lesser_user_gets_no_button_and_a_403_from_its_url(client, tenant, case, lesser):
    staff = _staff(client, LESSER[lesser](case))
    obj = case.target(tenant)
    url = reverse(f"admin:{case.url_name}", args=[obj.pk])
    before = case.state(obj)

    page = staff.get(reverse(f"admin:{case.linked_from}", args=[obj.pk]))
    assert page.status_code == 200
    assert url not in page.content.decode()
    assert staff.get(url).status_code == 403
    assert staff.post(url, case.data()).status_code == 403
    assert case.state(obj) == before


@pytest.mark.parametrize("case", BUTTONS, ids=str)
def test_a_user_with_the_permission_presses_the_button(client, tenant, case):
    staff = _staff(client, [*_view_only(), _permission(case.permission)])
    obj = case.target(tenant)
    url = reverse(f"admin:{case.url_name}", args=[obj.pk])
    before = case.state(obj)

    assert url in staff.get(reverse(f"admin:{case.linked_from}", args=[obj.pk])).content.decode()
    assert staff.get(url).status_code == 405  # a button is a POST; a link cannot act
    assert case.state(obj) == before
    response = staff.post(url, case.data())

    assert response.status_code in (200, 302)
    assert case.state(obj) != before


def test_every_custom_admin_view_is_in_the_table():
    custom = set()
    for model, model_admin in admin.site._registry.items():
        if type(model_admin).__module__.startswith("django."):
            continue  # Django's own (the user admin's password form checks change_user)
        info = f"{model._meta.app_label}_{model._meta.model_name}"
        standard = {f"{info}_{page}" for page in ("changelist", "add", "history", "delete")}
        standard.add(f"{info}_change")
        custom |= {p.name for p in model_admin.get_urls() if p.name and p.name not in standard}
    assert custom == {case.url_name for case in [*VIEWS, *BUTTONS]}


def test_the_webhook_page_shows_its_deliveries_only_to_those_who_may_view_deliveries(
    client, tenant
):
    hook = webhook_create(tenant=tenant, url="https://hooks.example.com/in")
    events.publish("deploy.started", tenant=tenant)
    delivery = Delivery.objects.get(webhook=hook)
    page = reverse("admin:webhooks_webhook_change", args=[hook.pk])

    staff = _staff(client, [_permission("webhooks.view_webhook")])
    shown = staff.get(page)
    assert shown.status_code == 200
    assert delivery.pk not in shown.content.decode()
    assert "Recent deliveries" not in shown.content.decode()

    User.objects.get(username="operator").user_permissions.add(
        _permission("webhooks.view_delivery")
    )
    assert delivery.pk in staff.get(page).content.decode()
