"""dev.py's local keys: made once under var/, private, reused, overridden by the user,
and an install from before them keeps its secrets."""

import io
import os
import stat
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

import dev
from ctrlplane.checks import check_keys
from webhooks import conf
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
    assert check_keys() == []


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
    assert check_keys() == []
    assert webhook_secret_current(webhook=hook) == second

    call_command("reencrypt_secrets", stdout=io.StringIO())
    settings.WEBHOOKS_ENCRYPTION_KEYS = keys[:1]  # the public key can go now
    rows = WebhookSecret.objects.filter(webhook=hook).values_list("ciphertext", flat=True)
    assert {Fernet(keys[0]).decrypt(c.encode()).decode() for c in rows} == {first, second}


def test_an_install_on_a_configured_database_keeps_its_secrets_too(var):
    keys = dev.local_keys(var, {"DATABASE_URL": "postgres://localhost/x", "SECRET_KEY": "old"})
    assert keys["WEBHOOKS_ENCRYPTION_KEYS"].split(",")[1:] == [dev.legacy_encryption_key("old")]
