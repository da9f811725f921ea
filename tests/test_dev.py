"""dev.py's local keys: made once under var/, private, reused, overridden by the user,
and an install from before them keeps its secrets. `run`'s web port: picked once, told to
every process, checked before anything starts."""

import io
import os
import socket
import stat
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

import dev
from ctrlplane.checks import check_secret_key
from webhooks import conf
from webhooks.checks import check_encryption_keys
from webhooks.models import WebhookSecret
from webhooks.services import webhook_create, webhook_secret_current, webhook_secret_rotate


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def var(tmp_path, monkeypatch):
    monkeypatch.setattr(dev, "VAR", tmp_path / "var")
    return tmp_path / "var"


def test_keys_are_made_once_private_and_reused(var):
    old_umask = os.umask(0)  # a permissive umask must not widen the file
    try:
        keys = dev.local_keys(var, {})
    finally:
        os.umask(old_umask)
    path = var / "local-keys.env"
    assert mode(path) == 0o600
    assert set(keys) == {"SECRET_KEY", "WEBHOOKS_ENCRYPTION_KEYS"}
    assert len(keys["SECRET_KEY"]) >= 50
    Fernet(keys["WEBHOOKS_ENCRYPTION_KEYS"])  # one key, a valid Fernet key
    text = path.read_text()
    assert dev.local_keys(var, {}) == keys
    assert path.read_text() == text
    assert [p.name for p in var.iterdir()] == ["local-keys.env"]  # no temporary file left


def test_another_checkout_gets_other_keys(tmp_path):
    first = dev.local_keys(tmp_path / "one", {})
    second = dev.local_keys(tmp_path / "two", {})
    assert first["SECRET_KEY"] != second["SECRET_KEY"]
    assert first["WEBHOOKS_ENCRYPTION_KEYS"] != second["WEBHOOKS_ENCRYPTION_KEYS"]


def test_a_readable_key_file_is_made_private_again(var):
    dev.local_keys(var, {})
    (var / "local-keys.env").chmod(0o644)
    dev.local_keys(var, {})
    assert mode(var / "local-keys.env") == 0o600


def test_the_processes_get_the_keys_and_pass_the_checks(var, monkeypatch, settings):
    for name in ("SECRET_KEY", "WEBHOOKS_ENCRYPTION_KEYS", "DEBUG"):
        monkeypatch.delenv(name, raising=False)
    env = dev.venv_env()
    assert {k: env[k] for k in ("SECRET_KEY", "WEBHOOKS_ENCRYPTION_KEYS")} == dev.local_keys(
        var, {}
    )
    assert dev.run_env()["SECRET_KEY"] == env["SECRET_KEY"]
    settings.DEBUG = False
    settings.SECRET_KEY = env["SECRET_KEY"]
    settings.WEBHOOKS_ENCRYPTION_KEYS = env["WEBHOOKS_ENCRYPTION_KEYS"].split(",")
    assert check_secret_key() + check_encryption_keys() == []


def test_keys_set_by_the_user_win(var, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "mine-" + "k" * 50)
    monkeypatch.delenv("WEBHOOKS_ENCRYPTION_KEYS", raising=False)
    env = dev.venv_env()
    assert env["SECRET_KEY"] == "mine-" + "k" * 50
    assert env["WEBHOOKS_ENCRYPTION_KEYS"] == dev.local_keys(var, {})["WEBHOOKS_ENCRYPTION_KEYS"]
    monkeypatch.setenv("WEBHOOKS_ENCRYPTION_KEYS", "user-key")
    assert dev.venv_env()["WEBHOOKS_ENCRYPTION_KEYS"] == "user-key"


def test_run_trusts_this_machine_for_metrics_unless_told_otherwise(var, monkeypatch):
    monkeypatch.delenv("METRICS_ALLOWED_NETWORKS", raising=False)
    assert dev.run_env()["METRICS_ALLOWED_NETWORKS"] == "127.0.0.0/8,::1/128"
    monkeypatch.setenv("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8")
    assert dev.run_env()["METRICS_ALLOWED_NETWORKS"] == "10.0.0.0/8"


def test_the_public_default_is_the_one_settings_use(settings):
    assert dev.INSECURE_DEFAULT_SECRET_KEY == settings.INSECURE_DEFAULT_SECRET_KEY
    assert dev.legacy_encryption_key("k").encode() == conf.legacy_encryption_key("k")


def test_a_fresh_install_does_not_carry_the_public_key(var):
    keys = dev.local_keys(var, {})["WEBHOOKS_ENCRYPTION_KEYS"].split(",")
    assert dev.legacy_encryption_key(dev.INSECURE_DEFAULT_SECRET_KEY) not in keys


def test_an_install_from_before_local_keys_keeps_its_secrets(var, tenant, settings):
    # Stored by an earlier version: default SECRET_KEY, no WEBHOOKS_ENCRYPTION_KEYS.
    legacy = dev.legacy_encryption_key(dev.INSECURE_DEFAULT_SECRET_KEY)
    settings.WEBHOOKS_ENCRYPTION_KEYS = [legacy]
    hook = webhook_create(tenant=tenant, url="https://a.example.com/")
    first = webhook_secret_current(webhook=hook)
    second = webhook_secret_rotate(webhook=hook, grace_period=timedelta(hours=1))
    var.mkdir()
    (var / "ctrlplane.sqlite3").touch()  # the earlier install's database

    keys = dev.local_keys(var, {})["WEBHOOKS_ENCRYPTION_KEYS"].split(",")
    assert keys[1:] == [legacy]  # kept, after the new key, for decrypting only
    settings.WEBHOOKS_ENCRYPTION_KEYS = keys
    settings.DEBUG = False
    settings.SECRET_KEY = dev.local_keys(var, {})["SECRET_KEY"]
    assert check_secret_key() + check_encryption_keys() == []
    assert webhook_secret_current(webhook=hook) == second

    call_command("reencrypt_secrets", stdout=io.StringIO())
    settings.WEBHOOKS_ENCRYPTION_KEYS = keys[:1]  # the public key can go now
    rows = WebhookSecret.objects.filter(webhook=hook).values_list("ciphertext", flat=True)
    assert {Fernet(keys[0]).decrypt(c.encode()).decode() for c in rows} == {first, second}


def test_an_install_on_a_configured_database_keeps_its_secrets_too(var):
    keys = dev.local_keys(var, {"DATABASE_URL": "postgres://localhost/x", "SECRET_KEY": "old"})
    assert keys["WEBHOOKS_ENCRYPTION_KEYS"].split(",")[1:] == [dev.legacy_encryption_key("old")]


# --- `run`'s web port -------------------------------------------------------------------


def test_the_web_port_is_the_flag_then_web_port_then_port_then_8000():
    assert dev.web_port({}) == 8000
    assert dev.web_port({"PORT": "5000"}) == 5000
    assert dev.web_port({"PORT": "5000", "WEB_PORT": "8100"}) == 8100
    assert dev.web_port({"PORT": "", "WEB_PORT": ""}) == 8000
    assert dev.run_arguments(["--port", "8200"]).port == 8200
    assert dev.run_arguments([]).port is None


def test_every_process_of_run_is_told_the_web_port(var, monkeypatch):
    # honcho overwrites PORT for each process (5000, 5100, ...); WEB_PORT it leaves alone.
    monkeypatch.setenv("PORT", "5000")
    monkeypatch.delenv("WEB_PORT", raising=False)
    assert dev.run_env()["WEB_PORT"] == "5000"
    assert dev.run_env(8123)["WEB_PORT"] == "8123"
    monkeypatch.delenv("PORT")
    assert dev.run_env()["WEB_PORT"] == "8000"


@pytest.mark.parametrize("value", ["http", "0", "65536", "-1"])
def test_a_port_that_is_not_a_port_is_refused_in_one_line(value, var, monkeypatch, capsys):
    assert dev.main(["run", f"--port={value}"]) == 2
    assert capsys.readouterr().err == (
        f"error: --port must be a port number (1-65535), got {value!r}\n"
    )
    monkeypatch.setenv("WEB_PORT", value)
    assert dev.main(["run"]) == 2
    assert f"WEB_PORT must be a port number (1-65535), got {value!r}" in capsys.readouterr().err


def test_run_on_a_taken_port_says_so_and_starts_nothing(var, monkeypatch, capsys):
    monkeypatch.setattr(dev, "ensure_venv", lambda extra: pytest.fail("went on to install"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert dev.main(["run", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"port {port} is already in use on 127.0.0.1" in err
    assert "python3 dev.py run --port N" in err
    assert dev.bind_problem("127.0.0.1", port) is None  # free again once closed


def test_the_printed_address_is_one_a_browser_can_open():
    assert dev.display_url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert dev.display_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"  # noqa: S104
    assert dev.display_url("::", 8000) == "http://[::1]:8000"
    assert dev.display_url("::1", 9000) == "http://[::1]:9000"
