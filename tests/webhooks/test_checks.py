"""webhooks/checks.py: the encryption keys of secrets at rest, and engine settings that
would stall delivery."""

import pytest
from cryptography.fernet import Fernet

from webhooks.checks import check_encryption_keys, check_webhook_settings
from webhooks.conf import legacy_encryption_key
from webhooks.delivery.dispatch import DISPATCH_CHUNK

DEFAULT_KEY = "insecure-local-development-key-change-me"
PUBLIC_FERNET_KEY = legacy_encryption_key(DEFAULT_KEY).decode()


def ids(messages) -> list[str]:
    return sorted(m.id for m in messages)


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.WEBHOOKS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    return settings


def test_production_with_a_random_key_is_clean(production):
    assert check_encryption_keys() == []


def test_an_empty_key_list_is_an_error(production):
    production.WEBHOOKS_ENCRYPTION_KEYS = []
    messages = check_encryption_keys()
    assert ids(messages) == ["webhooks.E007"]
    assert all(m.is_serious() for m in messages)


def test_with_debug_on_no_encryption_key_is_still_an_error(production):
    # There is no fallback key any more, so such a process could not store a secret at all.
    production.DEBUG = True
    production.WEBHOOKS_ENCRYPTION_KEYS = []
    assert ids(check_encryption_keys()) == ["webhooks.E007"]


def test_the_public_legacy_key_may_decrypt_but_never_encrypt(production):
    new = production.WEBHOOKS_ENCRYPTION_KEYS[0]
    production.WEBHOOKS_ENCRYPTION_KEYS = [new, PUBLIC_FERNET_KEY]  # an upgrade, mid-way
    assert check_encryption_keys() == []
    production.WEBHOOKS_ENCRYPTION_KEYS = [PUBLIC_FERNET_KEY, new]
    assert ids(check_encryption_keys()) == ["webhooks.E008"]


def test_with_debug_on_the_public_legacy_key_first_only_warns(production):
    production.DEBUG = True
    production.WEBHOOKS_ENCRYPTION_KEYS = [PUBLIC_FERNET_KEY]
    messages = check_encryption_keys()
    assert ids(messages) == ["webhooks.W008"]
    assert not any(m.is_serious() for m in messages)


def test_messages_never_contain_the_keys(production):
    production.WEBHOOKS_ENCRYPTION_KEYS = [PUBLIC_FERNET_KEY]
    text = " ".join(f"{m.msg} {m.hint}" for m in check_encryption_keys())
    assert PUBLIC_FERNET_KEY not in text


# -- the delivery engine's settings ------------------------------------------------------------


def engine_errors() -> list:
    return [m for m in check_webhook_settings() if m.is_serious()]


@pytest.mark.parametrize(
    "name",
    [
        "WEBHOOKS_ENGINE_SENDERS",
        "WEBHOOKS_ENGINE_MAX_IN_FLIGHT_PER_TENANT",
        "WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT",
    ],
)
def test_an_in_flight_limit_below_one_is_refused(settings, name):
    setattr(settings, name, 0)
    messages = engine_errors()
    assert ids(messages) == ["webhooks.E009"]
    assert name in messages[0].msg


def test_max_held_below_one_messages_worth_of_ids_is_refused(settings):
    settings.WEBHOOKS_ENGINE_MAX_HELD = DISPATCH_CHUNK - 1
    assert ids(engine_errors()) == ["webhooks.E010"]


def test_max_held_of_exactly_one_message_is_accepted(settings):
    settings.WEBHOOKS_ENGINE_MAX_HELD = DISPATCH_CHUNK
    assert engine_errors() == []
