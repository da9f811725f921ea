"""The pages in a real browser: Playwright for Python driving Debian's Chromium against
gunicorn, which serves the app and (through WhiteNoise) its collected static files.

Every request the pages make is recorded; one to any host but this machine fails the
test, and is aborted before it leaves. Screenshots go to artifacts/ (git-ignored)."""

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from ctrlplane.heartbeats.models import Role
from ctrlplane.heartbeats.services import heartbeat_record
from tests.pages.live import ARTIFACTS, LOCAL_HOSTS, chromium, web_server

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory) -> Iterator[str]:
    with web_server(tmp_path_factory.mktemp("web")) as base:
        yield base


@pytest.fixture(scope="module")
def browser(server) -> Iterator[object]:
    with chromium() as launched:
        yield launched


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch) -> None:
    """Playwright's sync API keeps an asyncio loop open on this thread, which Django takes
    for an async context. The ORM calls here are plain synchronous test code."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


class Visit:
    """A fresh page that records every request it makes.

    `requested` is every request the page made (page.on("request")). A request the page's
    own Content-Security-Policy refuses is reported too, but fails at once with
    ERR_BLOCKED_BY_CSP and never leaves the browser; `sent_elsewhere` is what remains,
    and the route handler aborts any of those before it reaches the network."""

    def __init__(self, browser) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.requested: list[str] = []
        self.blocked_by_csp: list[str] = []
        self.console: list[str] = []
        self.context.route("**/*", self._only_local)
        self.page = self.context.new_page()
        self.page.on("request", lambda request: self.requested.append(request.url))
        self.page.on("requestfailed", self._failed)
        self.page.on("console", lambda message: self.console.append(message.text))

    def _only_local(self, route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            route.abort()

    def _failed(self, request) -> None:
        if request.failure in ("csp", "net::ERR_BLOCKED_BY_CSP"):
            self.blocked_by_csp.append(request.url)

    def settle(self, predicate, timeout_ms: int = 5000) -> None:
        """Wait for `predicate` while Playwright delivers its events (time.sleep would not)."""
        for _ in range(timeout_ms // 100):
            if predicate():
                return
            self.page.wait_for_timeout(100)
        raise AssertionError("condition not met in the browser")

    def sent_elsewhere(self) -> list[str]:
        network = [u for u in self.requested if urlsplit(u).scheme in ("http", "https", "ws")]
        foreign = [u for u in network if urlsplit(u).hostname not in LOCAL_HOSTS]
        return [u for u in foreign if u not in self.blocked_by_csp]

    def refused_by_policy(self) -> list[str]:
        """Console messages about anything the Content-Security-Policy refused."""
        return [m for m in self.console if "Content Security Policy" in m]

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / name), full_page=False)


@pytest.fixture
def visit(browser) -> Iterator[Visit]:
    visit = Visit(browser)
    yield visit
    visit.context.close()


def test_swagger_ui_renders_the_operations_from_local_assets(server, visit):
    page = visit.page
    page.goto(f"{server}/api/docs/")
    operation = page.locator('.opblock[id] [data-path="/api/v1/webhooks/"]').first
    operation.wait_for(state="visible", timeout=30_000)
    assert page.locator(".opblock").count() >= 10
    assert page.locator(".info .title").inner_text().startswith("ctrlplane API")
    visit.screenshot("swagger-ui.png")
    assert f"{server}/api/schema/" in visit.requested
    assert any("/static/drf_spectacular_sidecar/swagger-ui-dist/" in u for u in visit.requested)
    assert visit.sent_elsewhere() == [], visit.console
    assert visit.refused_by_policy() == []  # the policy costs Swagger UI nothing


def test_redoc_renders_the_operations_from_local_assets(server, visit):
    page = visit.page
    page.goto(f"{server}/api/redoc/")
    page.wait_for_function(
        "() => document.body.innerText.includes('/api/v1/webhooks/')", timeout=30_000
    )
    assert page.get_by_role("heading", name="ctrlplane API").first.is_visible()
    visit.screenshot("redoc.png")
    assert any("/static/drf_spectacular_sidecar/redoc/" in u for u in visit.requested)
    # ReDoc's bundle asks for its logo from cdn.redoc.ly; the page's policy refuses it.
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    visit.settle(lambda: logo in visit.blocked_by_csp)
    assert visit.sent_elsewhere() == [], visit.console
    assert [m for m in visit.refused_by_policy() if logo not in m] == []


def test_the_home_page_shows_the_processes_styled_and_links_the_docs(
    server, visit, transactional_db
):
    now = timezone.now()
    heartbeat_record(
        role=Role.WORKER, hostname="celery@build-7", pid=4242,
        started_at=now - timedelta(minutes=3), now=now,
    )  # fmt: skip
    page = visit.page
    page.goto(f"{server}/")
    worker, beat = page.locator("#worker-status"), page.locator("#beat-status")
    assert worker.locator(".badge").inner_text() == "running"
    assert beat.locator(".badge").inner_text() == "not running"
    assert "python -m ctrlplane.process beat" in beat.inner_text()
    # The stylesheet came from WhiteNoise: the dead process has its red edge.
    edge = beat.evaluate("e => getComputedStyle(e).borderLeftColor")
    assert edge == "rgb(207, 34, 46)"
    visit.screenshot("home.png")

    page.get_by_role("link", name="ReDoc").click()
    page.wait_for_url(f"{server}/api/redoc/")
    page.go_back()
    page.get_by_role("link", name="Swagger UI").click()
    page.locator('[data-path="/api/v1/webhooks/"]').first.wait_for(timeout=30_000)
    assert any(u.endswith("/static/pages/home.css") for u in visit.requested)
    assert visit.sent_elsewhere() == [], visit.console
