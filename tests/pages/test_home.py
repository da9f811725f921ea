"""The home page at `/`: links, version, and whether worker and beat run."""

import re
from datetime import timedelta
from importlib.metadata import version

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

import ctrlplane
from ctrlplane.heartbeats.models import Role
from ctrlplane.heartbeats.services import heartbeat_record
from tests.services import broker_down

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _interval(settings):
    settings.HEARTBEAT_INTERVAL = 10  # stale after 30 s


ISO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def beat_from(role, *, seen_ago=0.0, hostname="build-7", pid=4242):
    now = timezone.now()
    heartbeat_record(
        role=role,
        hostname=hostname,
        pid=pid,
        started_at=now - timedelta(minutes=5),
        now=now - timedelta(seconds=seen_ago),
    )


def panel(html: str, role: str) -> str:
    match = re.search(
        rf'<div class="process (up|down)" id="{role}-status">(.*?)\n</div>', html, re.S
    )
    assert match, f"no {role} panel"
    return re.sub(r"\s+", " ", match.group(0))  # as a reader sees it, not as indented


def test_the_page_links_the_admin_the_api_docs_and_the_health_endpoints(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    hrefs = set(re.findall(r'href="([^"]+)"', html))
    assert {
        "/admin/", "/api/docs/", "/api/redoc/", "/api/schema/", "/healthz", "/readyz", "/metrics",
        "/static/pages/home.css",
    } <= hrefs  # fmt: skip
    assert not [h for h in hrefs if h.startswith(("http:", "https:", "//"))]


def test_the_page_shows_the_installed_version(client):
    assert ctrlplane.__version__ == version("ctrlplane")  # one version, not two to keep in step
    html = client.get("/").content.decode()
    assert f'<span class="version" id="version">{ctrlplane.__version__}</span>' in html


def test_with_no_heartbeats_it_says_neither_runs_and_how_to_start_them(client):
    html = client.get("/").content.decode()
    worker, beat = panel(html, "worker"), panel(html, "beat")
    assert 'class="process down"' in worker
    assert "No worker is running: deliveries will wait" in worker
    assert "python -m ctrlplane.process worker" in worker
    assert "Last heartbeat: never" in worker
    assert 'class="process down"' in beat
    assert "Beat is not running" in beat
    assert "python -m ctrlplane.process beat" in beat


def test_a_live_worker_shows_running_while_a_stale_beat_shows_when_it_was_last_seen(client):
    beat_from(Role.WORKER, seen_ago=2)
    beat_from(Role.BEAT, seen_ago=300)
    html = client.get("/").content.decode()
    worker, beat = panel(html, "worker"), panel(html, "beat")
    assert '<span class="badge">running</span>' in worker
    assert re.search(r"1 process, last heartbeat [2-5] s ago", worker)
    assert "No worker is running" not in worker
    assert '<span class="badge">not running</span>' in beat
    assert "(5 min ago)" in beat


def test_host_names_and_process_ids_are_shown_to_staff_only(client):
    beat_from(Role.WORKER)
    assert "build-7" not in client.get("/").content.decode()
    staff = User.objects.create_user("op", password="pw", is_staff=True)
    client.force_login(staff)
    assert "<code>build-7</code> pid 4242" in client.get("/").content.decode()


def test_the_admin_view_site_link_leads_to_the_home_page(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert '<a href="/">View site</a>' in html


def test_readyz_reports_the_processes_without_changing_its_status(client):
    beat_from(Role.WORKER, seen_ago=1)
    body = client.get("/readyz").json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "broker": "ok"}
    assert body["processes"]["worker"]["alive"] is True
    assert re.fullmatch(ISO_UTC, body["processes"]["worker"]["last_seen"])  # as the API writes
    assert body["processes"]["beat"] == {"alive": False, "last_seen": None}
    with broker_down():
        down = client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["processes"]["worker"]["alive"] is True


def test_the_page_still_answers_when_the_database_does_not(monkeypatch):
    from django.db import OperationalError

    from ctrlplane.pages import views

    def unreachable(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(views, "role_statuses", unreachable)
    response = Client().get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "The database does not answer" in html
    assert 'href="/admin/"' in html
