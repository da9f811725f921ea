"""Signing secrets at rest: Fernet-encrypted with rotatable keys (MultiFernet)."""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.core.exceptions import ImproperlyConfigured

from webhooks import conf


class SecretUnavailable(ValueError):
    """A stored secret that none of WEBHOOKS_ENCRYPTION_KEYS decrypts."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[bytes, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k) for k in keys])


def _keys() -> tuple[bytes, ...]:
    keys = tuple(conf.encryption_keys())
    if not keys:
        # Nothing to fall back to: a key derived from anything in the repository is public.
        # Processes refuse to start without one (check ctrlplane.E002); this covers the rest.
        raise ImproperlyConfigured(
            "WEBHOOKS_ENCRYPTION_KEYS is empty, so secrets can be neither stored nor read."
        )
    return keys


def _current() -> MultiFernet:
    return _fernet(_keys())


def encrypt_secret(secret: str) -> str:
    return _current().encrypt(secret.encode()).decode()


def decrypt_secret(ciphertext: str) -> str:
    return _decrypt(_keys(), ciphertext)


# Every claimed batch needs its webhooks' secrets; decrypting is the costly part, so
# results are kept per (keys, ciphertext). A key change misses the cache by construction.
@lru_cache(maxsize=4096)
def _decrypt(keys: tuple[bytes, ...], ciphertext: str) -> str:
    try:
        return _fernet(keys).decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        # Never include the ciphertext: the message ends up in logs and attempt records.
        raise SecretUnavailable(
            "a webhook secret could not be decrypted; is WEBHOOKS_ENCRYPTION_KEYS complete?"
        ) from None


def secret_is_current(ciphertext: str) -> bool:
    """Whether the newest key alone decrypts it (so re-encrypting would change nothing)."""
    try:
        Fernet(_keys()[0]).decrypt(ciphertext.encode())
    except InvalidToken:
        return False
    return True


def reencrypt_secret(ciphertext: str) -> str:
    """Re-encrypt with the newest key, for rotating WEBHOOKS_ENCRYPTION_KEYS."""
    try:
        return _current().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise ValueError("no key in WEBHOOKS_ENCRYPTION_KEYS opens this secret") from None
