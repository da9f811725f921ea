"""The network policy built from settings: allowed networks and the service's own hosts."""

import os
import subprocess
import sys

import pytest

from webhooks.validation import network_policy


def test_the_policy_holds_allowed_hosts_site_url_and_the_web_port(settings):
    settings.ALLOWED_HOSTS = ["ctrl.example.com", ".ctrl.example.net", "*"]
    settings.SITE_URL = "https://events.example.org:8443/"
    settings.WEB_PORT = 9000
    own = network_policy().own_hosts
    assert own.names == {"ctrl.example.com", "events.example.org"}
    assert own.domains == ("ctrl.example.net",)
    assert own.ports == {9000, 8443}


def test_a_settings_change_applies_to_the_next_check(settings):
    settings.ALLOWED_HOSTS = ["one.example.com"]
    assert network_policy().own_hosts.refusal("one.example.com", 443) is not None
    settings.ALLOWED_HOSTS = ["two.example.com"]
    assert network_policy().own_hosts.refusal("one.example.com", 443) is None


def test_in_debug_with_no_allowed_hosts_djangos_local_hosts_are_the_services(settings):
    settings.DEBUG = True
    settings.ALLOWED_HOSTS = []
    own = network_policy().own_hosts
    assert own.refusal("app.localhost", 8000) is not None
    assert own.refusal("127.0.0.1", 8000) is not None


def settings_in_a_fresh_process(**env: str) -> subprocess.CompletedProcess[str]:
    code = "from django.conf import settings; print(settings.SITE_URL, settings.WEB_PORT)"
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "ctrlplane.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_site_url_and_port_are_read_from_the_environment():
    done = settings_in_a_fresh_process(SITE_URL="https://events.example.org", PORT="9100")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["https://events.example.org", "9100"]


def test_web_port_wins_over_the_port_honcho_gives_each_process():
    # The worker under `dev.py run`: honcho set PORT=5100, dev.py set WEB_PORT to the web's.
    done = settings_in_a_fresh_process(SITE_URL="", PORT="5100", WEB_PORT="8000")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["8000"]


@pytest.mark.parametrize(
    "value", ["events.example.org", "ftp://events.example.org", "https://x:99999"]
)
def test_a_malformed_site_url_stops_the_service_at_start(value):
    done = settings_in_a_fresh_process(SITE_URL=value)
    assert done.returncode != 0
    assert "SITE_URL must be an http(s) URL" in done.stderr
