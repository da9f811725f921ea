"""The dashboard page: staff only, read-only, linked first from the admin index."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from webhooks.rollups import RollupInput, attempts_rollup
from webhooks.services import webhook_create, webhook_disable

URL = "/admin/dashboard/"


def staff(client, username="operator", *, permissions=None, superuser=False):
    user = User.objects.create_user(
        username, f"{username}@example.com", "pw", is_staff=True, is_superuser=superuser
    )
    if permissions is not None:
        user.user_permissions.set(permissions)
    client.force_login(user)
    return client


def view_only():
    return Permission.objects.filter(codename__startswith="view_")


@pytest.fixture
def history(tenant):
    """A failing webhook with a minute of attempts, and a disabled one."""
    hook = webhook_create(tenant=tenant, url="https://a.example.com/in", description="Billing")
    gone = webhook_create(tenant=tenant, url="https://b.example.com/in")
    webhook_disable(webhook=gone, reason="410 Gone", notify=False)
    now = timezone.now()
    attempts_rollup(
        [RollupInput(tenant.pk, hook.pk, now, 120, ok=True) for _ in range(3)]
        + [RollupInput(tenant.pk, hook.pk, now, 900, ok=False, exhausted=True)]
    )
    return hook, gone


def test_the_url_is_the_admins_dashboard():
    assert reverse("admin-dashboard") == URL


def test_a_visitor_who_is_not_logged_in_is_sent_to_the_login(client, db):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/admin/dashboard/")


def test_a_logged_in_user_who_is_not_staff_is_sent_to_the_login(client, db):
    user = User.objects.create_user("tenant-user", "u@example.com", "pw")
    user.user_permissions.set(view_only())
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_staff_who_may_not_see_deliveries_are_refused(client, db):
    others = Permission.objects.exclude(codename="view_delivery").filter(
        codename__startswith="view_"
    )
    response = staff(client, permissions=others).get(URL)
    assert response.status_code == 403
    index = client.get(reverse("admin:index")).content.decode()
    assert URL not in index


def test_staff_see_every_panel(client, history):
    hook, gone = history
    response = staff(client, superuser=True).get(URL)

    assert response.status_code == 200
    page = response.content.decode()
    for canvas in ("chart-outcomes", "chart-success", "chart-latency"):
        assert f'id="{canvas}"' in page
    assert 'id="dashboard-data"' in page
    assert "/static/webhooks/vendor/chart.js/4.6.1/chart.umd.min.js" in page
    assert reverse("admin:webhooks_webhook_change", args=[hook.pk]) in page
    assert reverse("admin:webhooks_webhook_change", args=[gone.pk]) in page
    assert "Billing" in page
    assert "disabled" in page
    assert response.context["summary"]["attempts"] == 4
    assert response.context["summary"]["success_rate"] == "75.0 %"
    data = response.context["chart_data"]
    assert len(data["labels"]) == 60
    assert (data["succeeded"][-1], data["exhausted"][-1]) == (3, 1)
    assert (data["success_rate"][-1], data["success_rate"][0]) == (75.0, None)


def test_view_only_staff_see_it_all_and_can_act_on_nothing(client, history):
    hook, _ = history
    staff(client, permissions=view_only())

    response = client.get(URL)

    assert response.status_code == 200
    page = response.content.decode()
    assert reverse("admin:webhooks_webhook_change", args=[hook.pk]) in page
    assert "<form" not in page.split('id="content-main"')[1]  # no action, no button
    assert "<button" not in page.split('id="content-main"')[1]
    assert "whsec_" not in page
    assert client.post(URL).status_code == 405


@pytest.mark.parametrize("window", ["hour", "day", "week"])
def test_each_window_opens(client, history, window):
    response = staff(client, superuser=True).get(URL, {"window": window})
    assert response.status_code == 200
    assert response.context["window"].value == window
    assert response.context["tenants"][0][1]["attempts"] == 4


def test_an_unknown_window_is_a_400_that_says_which_are_known(client, db):
    response = staff(client, superuser=True).get(URL, {"window": "year"})
    assert response.status_code == 400
    assert b"window: must be one of hour, day, week" in response.content


def test_the_admin_index_leads_with_the_dashboard(client, db):
    page = staff(client, permissions=view_only()).get(reverse("admin:index")).content.decode()
    assert f'href="{URL}"' in page
    assert page.index('id="dashboard-link"') < page.index('class="app-webhooks')
