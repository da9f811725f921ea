"""The operator dashboard in a real browser (Debian's Chromium, gunicorn, static files
through WhiteNoise), at 1366x768 in the admin's light and dark themes. Screenshots go to
artifacts/ (git-ignored)."""

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

import events
from tests.pages import test_browser
from tests.pages.live import ARTIFACTS, LOCAL_HOSTS
from webhooks.models import Delivery, DeliveryStatus, Webhook
from webhooks.rollups import RollupInput, attempts_rollup
from webhooks.services import webhook_create, webhook_disable

pytestmark = [pytest.mark.browser]

# The browser pages' fixtures: gunicorn with collected static files, Chromium, and the ORM
# allowed beside Playwright's event loop.
server = test_browser.server
browser = test_browser.browser
_orm_beside_playwright = test_browser._orm_beside_playwright

PASSWORD = "correct horse battery staple"
CANVASES = ("chart-outcomes", "chart-success", "chart-latency")


class Console:
    """A 1366x768 page in the given colour scheme; records errors and foreign requests."""

    def __init__(self, browser, *, scheme: str) -> None:
        self.context = browser.new_context(
            viewport={"width": 1366, "height": 768}, color_scheme=scheme
        )
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.context.route("**/*", self._only_local)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _only_local(self, route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            self.foreign.append(route.request.url)
            route.abort()

    def log_in(self, server: str, username: str) -> None:
        self.page.goto(f"{server}/admin/login/?next=/admin/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", PASSWORD)
        self.page.click("input[type=submit]")
        self.page.wait_for_url(f"{server}/admin/")

    def charts_drawn(self) -> list[int]:
        """How many data points each chart holds (Chart.js drew it onto its canvas)."""
        return list(
            self.page.evaluate(
                """ids => ids.map(id => {
                   const chart = Chart.getChart(document.getElementById(id));
                   return chart ? chart.data.labels.length : -1; })""",
                list(CANVASES),
            )
        )

    def scrolls_sideways(self) -> bool:
        return bool(
            self.page.evaluate(
                "() => document.documentElement.scrollWidth > document.documentElement.clientWidth"
            )
        )

    def screenshot(self, name: str, *, full_page: bool = False) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / name), full_page=full_page)


@pytest.fixture
def console(browser, request) -> Iterator[Console]:
    opened: list[Console] = []

    def open_console(scheme: str) -> Console:
        opened.append(Console(browser, scheme=scheme))
        return opened[-1]

    yield open_console  # type: ignore[misc]
    for each in opened:
        each.context.close()


@pytest.fixture
def operator(transactional_db, tenant, other_tenant) -> str:
    """A superuser, and an hour of traffic: a healthy webhook, a failing one, a disabled
    one, another tenant's, and a backlog."""
    User.objects.create_superuser("ops", "ops@example.com", PASSWORD)
    healthy = webhook_create(tenant=tenant, url="https://a.example.com/in", description="Deploys")
    failing = webhook_create(tenant=tenant, url="https://b.example.com/in", description="Pager")
    theirs = webhook_create(tenant=other_tenant, url="https://c.example.com/in")
    gone = webhook_create(tenant=other_tenant, url="https://d.example.com/in")
    now = timezone.now()
    rows = []
    for minute in range(60):
        at = now - timedelta(minutes=minute)
        rows += [RollupInput(tenant.pk, healthy.pk, at, 40 + minute * 3, ok=True)] * (
            20 + minute % 7
        )
        rows += [RollupInput(other_tenant.pk, theirs.pk, at, 90, ok=True)] * 8
        rows += [RollupInput(tenant.pk, failing.pk, at, 2000, ok=False)] * (minute % 4)
        rows += [RollupInput(tenant.pk, failing.pk, at, 5000, ok=False, exhausted=True)] * (
            minute % 9 == 0
        )
    attempts_rollup(rows)
    Webhook.objects.filter(pk=failing.pk).update(failing_since=now - timedelta(minutes=50))
    webhook_disable(webhook=gone, reason="410 Gone", notify=False)
    for _ in range(3):
        events.publish("deploy.started", tenant=tenant)
    Delivery.objects.filter(status=DeliveryStatus.PENDING).update(
        next_attempt_at=now - timedelta(minutes=4)
    )
    return "ops"


def test_the_dashboard_draws_its_charts_at_1366_px_in_light_and_dark(server, console, operator):
    light = console("light")
    light.log_in(server, operator)
    light.page.get_by_role("link", name="Dashboard").first.click()
    light.page.wait_for_url(f"{server}/admin/dashboard/")
    light.page.wait_for_function("() => window.Chart && Chart.getChart('chart-latency')")

    assert light.charts_drawn() == [60, 60, 60]
    assert light.page.locator("#card-backlog .cp-figure").inner_text() == "6"
    failing = light.page.locator("#failing-endpoints tbody tr")
    assert failing.count() == 2
    assert "Pager" in failing.first.inner_text()
    assert "failing for 50 min" in failing.first.inner_text()
    assert "disabled" in failing.nth(1).inner_text()
    assert light.page.locator("#tenant-totals tbody tr").count() == 2
    assert not light.scrolls_sideways()
    light.screenshot("dashboard-1366-light.png")
    light.screenshot("dashboard-1366-light-full.png", full_page=True)

    failing.first.get_by_role("link").click()
    light.page.wait_for_url("**/admin/webhooks/webhook/**/change/")

    dark = console("dark")
    dark.log_in(server, operator)
    dark.page.goto(f"{server}/admin/dashboard/?window=week")
    dark.page.wait_for_function("() => window.Chart && Chart.getChart('chart-latency')")
    assert dark.charts_drawn() == [168, 168, 168]
    body = dark.page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert body == "rgb(18, 18, 18)"  # the admin's dark --body-bg
    # The charts' text takes the dark theme's colour, not Chart.js' default grey.
    tick = dark.page.evaluate("() => Chart.getChart('chart-outcomes').options.scales.x.ticks.color")
    quiet = dark.page.evaluate(
        "() => getComputedStyle(document.documentElement).getPropertyValue('--body-quiet-color')"
    )
    assert tick == quiet.strip()
    assert tick != "#666"  # Chart.js' own default
    assert not dark.scrolls_sideways()
    dark.screenshot("dashboard-1366-dark.png")

    for each in (light, dark):
        assert each.errors == []
        assert each.foreign == []
