import pytest
from django.core.exceptions import ValidationError

from webhooks.header_secrets import (
    REDACTED,
    decrypt_headers,
    encrypt_headers,
    headers_redacted,
    headers_split,
    is_sensitive,
)


@pytest.mark.parametrize(
    ("name", "chosen", "sensitive"),
    [
        ("Authorization", (), True),
        ("proxy-authorization", (), True),
        ("COOKIE", (), True),
        ("X-Api-Token", (), True),
        ("X-Client-Secret", (), True),
        ("X-API-KEY", (), True),
        ("X-Hub-Signature", (), True),
        ("X-Auth", (), True),
        ("X-Password", (), True),
        ("X-Session-Id", (), True),
        ("X-Team", (), False),
        ("X-Tenant-Pass", (), False),
        ("X-Tenant-Pass", ("x-tenant-pass",), True),
        ("x-foo", ("X-Foo", "X-Bar"), True),
        ("X-Foobar", ("X-Foo",), False),
    ],
)
def test_which_headers_are_sensitive(name, chosen, sensitive):
    assert is_sensitive(name, chosen) is sensitive


def test_split_sorts_new_values_and_keeps_stored_ones_for_redacted():
    split = headers_split(
        {"Authorization": REDACTED, "X-Foo": "f", "X-Team": "ops", "X-Old": REDACTED},
        chosen=["x-foo"],
        stored={"authorization": "Bearer a", "X-Old": "o", "X-Gone": "g"},
    )
    assert split.plain == {"X-Team": "ops"}
    # X-Old is not chosen any more, but a stored secret never becomes readable by omission.
    assert split.sensitive == {"Authorization": "Bearer a", "X-Foo": "f", "X-Old": "o"}


def test_redacted_without_a_stored_value_is_refused():
    with pytest.raises(ValidationError) as info:
        headers_split({"X-A": REDACTED}, chosen=[], stored={"X-B": "b"})
    assert "has none" in info.value.message_dict["headers"][0]


def test_redacted_view_and_encryption_round_trip():
    assert headers_redacted({"X-Team": "a"}, ["Authorization"]) == {
        "X-Team": "a",
        "Authorization": REDACTED,
    }
    ciphertext = encrypt_headers({"Authorization": "Bearer z-81"})
    assert "z-81" not in ciphertext
    assert decrypt_headers(ciphertext) == {"Authorization": "Bearer z-81"}
    assert encrypt_headers({}) == ""
    assert decrypt_headers("") == {}


def test_an_undecryptable_value_raises_without_showing_the_ciphertext(settings):
    from cryptography.fernet import Fernet

    ciphertext = encrypt_headers({"Authorization": "Bearer z-81"})
    settings.WEBHOOKS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(ValueError, match="WEBHOOKS_ENCRYPTION_KEYS") as info:
        decrypt_headers(ciphertext)
    assert ciphertext not in str(info.value)
