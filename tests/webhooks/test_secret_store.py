"""webhooks/secret_store.py: secrets at rest are encrypted only with configured keys."""

import base64
import hashlib

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from webhooks.secret_store import decrypt_secret, encrypt_secret, secret_is_current


def test_without_keys_nothing_is_encrypted_with_a_derived_key(settings):
    # Earlier versions derived a key from SECRET_KEY, whose default is in the repository.
    settings.WEBHOOKS_ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="WEBHOOKS_ENCRYPTION_KEYS is empty"):
        encrypt_secret("whsec_x")


def test_without_keys_a_stored_secret_is_not_read_with_the_public_key(settings):
    digest = hashlib.sha256(b"ctrlplane.webhooks.secrets:" + settings.SECRET_KEY.encode())
    token = Fernet(base64.urlsafe_b64encode(digest.digest())).encrypt(b"whsec_x").decode()
    settings.WEBHOOKS_ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured):
        decrypt_secret(token)


def test_only_the_newest_key_counts_as_current(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.WEBHOOKS_ENCRYPTION_KEYS = [old]
    token = encrypt_secret("whsec_x")
    settings.WEBHOOKS_ENCRYPTION_KEYS = [new, old]
    assert decrypt_secret(token) == "whsec_x"
    assert not secret_is_current(token)
    assert secret_is_current(encrypt_secret("whsec_y"))
