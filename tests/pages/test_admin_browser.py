"""The operator console in a real browser: Playwright driving Debian's Chromium against
gunicorn, on the test database.

An operator logs in, registers a webhook through the form, sends it a test event and sees
it on the webhook page, makes a delivery fail, retries it from the delivery page and sees
the new attempt; every page is checked at 1366x768, light and dark, for horizontal
scrolling. Deliveries are sent by this test process through the engine's synchronous
path (`delivery_attempt`) to a receiver on loopback; the web process hands its IDs to an
in-memory broker no worker reads. Screenshots go to artifacts/ (git-ignored)."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

import events
from tests.delivery import delivery_attempt
from tests.pages.live import ARTIFACTS, LOCAL_HOSTS, chromium, web_server
from tests.receiver import sequence, status
from webhooks.models import Delivery, DeliveryStatus, Webhook
from webhooks.rollups import RollupInput, attempts_rollup
from webhooks.services import webhook_create, webhook_disable

pytestmark = [pytest.mark.browser]

WIDTH, HEIGHT = 1366, 768
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def console(django_db_setup, tmp_path_factory) -> Iterator[str]:
    """gunicorn serving the admin, allowed to register webhooks on loopback; the IDs it
    hands to the broker go to an in-memory one no worker reads."""
    extra = {"WEBHOOKS_ALLOWED_NETWORKS": "loopback", "CELERY_BROKER_URL": "memory://"}
    with web_server(tmp_path_factory.mktemp("console"), extra) as base:
        yield base


@pytest.fixture(scope="module")
def chromium_browser(console) -> Iterator[object]:
    with chromium() as launched:
        yield launched


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch) -> None:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


class Operator:
    """A browser session at 1366x768 in one colour scheme; every request stays local."""

    def __init__(self, browser, base: str, scheme: str, storage: object = None) -> None:
        self.base = base
        self.scheme = scheme
        self.errors: list[str] = []
        self.context = browser.new_context(
            viewport={"width": WIDTH, "height": HEIGHT},
            color_scheme=scheme,
            storage_state=storage,
        )
        self.context.route("**/*", self._only_local)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _only_local(self, route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            self.errors.append(f"request to {route.request.url}")
            route.abort()

    def open(self, path: str) -> None:
        response = self.page.goto(self.base + path)
        assert response is not None
        assert response.status == 200, f"{path}: {response.status}"
        assert self.page.url == self.base + path, f"{path}: redirected to {self.page.url}"

    def fits(self) -> None:
        """Nothing reaches past the right edge: no horizontal scrollbar, and the last
        column of a list is on screen."""
        overflow = self.page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{self.page.url}: {overflow}px of horizontal scroll"
        results = self.page.locator("#changelist .results")
        if results.count():  # the list scrolls in a box of its own: its columns must fit it
            hidden = results.evaluate("e => e.scrollWidth - e.clientWidth")
            assert hidden <= 0, f"{self.page.url}: {hidden}px of the list's columns cut off"

    def shot(self, name: str, *, full_page: bool = False) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        suffix = "-dark" if self.scheme == "dark" else ""
        path = ARTIFACTS / f"admin-{name}{suffix}.png"
        self.page.screenshot(path=str(path), full_page=full_page)

    def close(self) -> None:
        self.context.close()


def send(delivery_id: str) -> None:
    """One attempt through the engine's synchronous path, on a thread of its own: this
    thread runs Playwright's event loop, and the path runs one of its own."""

    def attempt() -> None:
        try:
            delivery_attempt(delivery_id=delivery_id)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(attempt).result(timeout=60)


def test_an_operator_registers_tests_retries_and_reads_every_page(
    console, chromium_browser, transactional_db, tenant, receiver
):
    User.objects.create_superuser("ops", "ops@example.com", PASSWORD)
    hook_url = receiver.route("/hook", sequence(status(200), status(500), status(200)))
    light = Operator(chromium_browser, console, "light")
    page = light.page

    # Log in.
    light.open("/admin/login/?next=/admin/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{console}/admin/")
    assert page.get_by_role("link", name="Webhooks").first.is_visible()

    # Register a webhook through the form.
    light.open("/admin/webhooks/webhook/add/")
    page.select_option("#id_tenant", label=str(tenant))
    page.fill("#id_url", hook_url)
    page.fill("#id_description", "Deploy notifier")
    page.check("input[name=event_types][value='deploy.started']")
    page.fill("#id_event_patterns", "health.*")
    light.fits()
    page.click("input[name=_save]")
    page.wait_for_url(f"{console}/admin/webhooks/webhook/")
    hook = Webhook.objects.get(url=hook_url)
    assert hook.event_types == ["deploy.started", "health.*"]

    # Send a test event from the webhook page; it arrives and shows on the page.
    light.open(f"/admin/webhooks/webhook/{hook.pk}/change/")
    page.click("#webhook-actions button:has-text('Send test event')")
    page.wait_for_selector(".messagelist .success")
    assert "Sent the test event" in page.locator(".messagelist").inner_text()
    test_delivery = Delivery.objects.get(webhook=hook, event_type="webhook.test")
    send(test_delivery.pk)
    assert receiver.requests_to("/hook")[0].headers["webhook-id"] == test_delivery.event_id
    light.open(f"/admin/webhooks/webhook/{hook.pk}/change/")
    recent = page.locator("#recent-deliveries").inner_text()
    assert test_delivery.pk in recent
    assert "succeeded" in recent
    assert page.locator(".field-health").inner_text().strip().endswith("healthy")
    assert "100%" in page.locator(".field-activity_24h").inner_text()
    light.fits()
    light.shot("webhook")
    # … and on the dashboard, in its tenant's totals for the last hour.
    light.open("/admin/dashboard/")
    totals = page.locator("#tenant-totals").inner_text()
    assert tenant.slug in totals
    assert page.locator("#card-attempts .cp-figure").inner_text().strip() != "0"

    # Two more webhooks of the tenant, in other states: one subscribes to other types and
    # fails, one is disabled. The list shows all three; the event page says why these two
    # did not get the event.
    billing = webhook_create(
        tenant=tenant,
        url="https://billing.internal.example.com/hooks/ctrlplane/deployments",
        description="Billing service (production, eu-west-1)",
        event_types=["instance.*", "health.degraded"],
    )
    # Its last twelve hours as the recorder would have counted them: fine, then failing.
    now = timezone.now()
    Webhook.objects.filter(pk=billing.pk).update(failing_since=now - timedelta(hours=4))
    attempts_rollup(
        [
            RollupInput(
                tenant_id=tenant.pk,
                webhook_id=billing.pk,
                started_at=now - timedelta(hours=hours_ago, minutes=n),
                duration_ms=80,
                ok=hours_ago > 4 and n % 7 != 0,
            )
            for hours_ago in range(1, 13)
            for n in range(20 - hours_ago)
        ]
    )
    off = webhook_create(tenant=tenant, url="https://old.example.com/in", description="Old")
    webhook_disable(webhook=off, reason="Every delivery failed for 5 days.", notify=False)

    # A delivery fails; the delivery page says why; Retry makes a new attempt.
    event = events.publish("deploy.started", tenant=tenant, data={"version": "1.4.2"})
    failing = Delivery.objects.get(webhook=hook, event_id=event.id)
    send(failing.pk)
    light.open(f"/admin/webhooks/delivery/{failing.pk}/change/")
    reason = page.locator("#delivery-reason").inner_text()
    assert reason.startswith("Attempt 2 of 8 scheduled at ")
    assert reason.endswith("because the endpoint answered 500.")
    assert '"version": "1.4.2"' in page.locator(".cp-json").inner_text()
    assert page.locator(".cp-attempt").count() == 1
    light.fits()
    light.shot("delivery-failed")
    page.click("#delivery-actions button:has-text('Retry now')")
    page.wait_for_selector(".messagelist .success")
    assert "Retrying now: attempt 2 is due." in page.locator(".messagelist").inner_text()
    assert page.locator("#delivery-reason").inner_text().startswith("Attempt 2 is a manual retry")
    send(failing.pk)
    page.reload()
    assert page.locator(".cp-attempt").count() == 2
    assert "manual" in page.locator("#attempt-2 .cp-attempt-head").inner_text()
    assert page.locator("#delivery-reason").inner_text().startswith("Delivered at ")
    failing.refresh_from_db()
    assert failing.status == DeliveryStatus.SUCCEEDED
    light.fits()
    light.shot("delivery")

    # Links from the delivery to its event, whose page says who received it.
    page.click(f".field-links a:has-text('{event.id}')")
    page.wait_for_selector("#event-recipients")
    recipients = page.locator("#event-recipients").inner_text()
    assert hook.pk in recipients
    assert "deploy.started matches none of them" in recipients
    assert "Disabled at the time" in recipients
    light.fits()
    light.shot("event")

    # Every page at 1366 px, light and dark, without horizontal scrolling.
    light.open("/admin/webhooks/webhook/")
    billing_row = page.locator(f"#result_list tr:has(a[title='{billing.pk}'])")
    assert "failing" in billing_row.inner_text()
    assert billing_row.locator("svg.cp-spark rect.cp-fail").count() > 0
    pages = {
        "webhooks": "/admin/webhooks/webhook/",
        "webhook": f"/admin/webhooks/webhook/{hook.pk}/change/",
        "deliveries": "/admin/webhooks/delivery/",
        "delivery": f"/admin/webhooks/delivery/{failing.pk}/change/",
        "events": "/admin/events/eventrecord/",
        "event": f"/admin/events/eventrecord/{event.id}/change/",
        "attempts": "/admin/webhooks/attempt/",
    }
    dark = Operator(chromium_browser, console, "dark", storage=light.context.storage_state())
    try:
        for operator in (light, dark):
            for name, path in pages.items():
                operator.open(path)
                operator.shot(name, full_page=name in ("webhook", "delivery", "event"))
                operator.fits()
        background = dark.page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background != "rgb(255, 255, 255)"  # the admin's dark theme applies
        assert light.errors == []
        assert dark.errors == []
    finally:
        dark.close()
        light.close()
