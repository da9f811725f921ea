import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from webhooks.delivery.signing import (
    InvalidSecret,
    generate_secret,
    secret_key,
    sign,
    signature_header,
)

# A fixed secret and clock, so the signature is a golden value.
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
MSG_ID = "evt_01JCTESTTESTTESTTESTTESTTE"
TIMESTAMP = 1_767_225_600  # 2026-01-01T00:00:00Z
BODY = b'{"id":"evt_01JCTESTTESTTESTTESTTESTTE","type":"deploy.succeeded"}'


def test_signature_is_the_golden_value():
    assert sign(SECRET, msg_id=MSG_ID, timestamp=TIMESTAMP, body=BODY) == (
        "v1,ZFq/8hZAVcDPRtm7g6GmCqLxzD3PeQ0EA6hItkaCdZc="
    )


def test_the_standardwebhooks_library_signs_the_same():
    when = datetime.fromtimestamp(TIMESTAMP, tz=UTC)
    theirs = StandardWebhook(SECRET).sign(MSG_ID, when, BODY.decode())
    assert sign(SECRET, msg_id=MSG_ID, timestamp=TIMESTAMP, body=BODY) == theirs


def test_rotation_header_carries_one_signature_per_secret_and_verifies_with_either():
    new = generate_secret()
    now = int(datetime.now(UTC).timestamp())  # the verifier checks freshness
    header = signature_header([new, SECRET], msg_id=MSG_ID, timestamp=now, body=BODY)
    assert len(header.split(" ")) == 2
    headers = {"webhook-id": MSG_ID, "webhook-timestamp": str(now), "webhook-signature": header}
    for secret in (new, SECRET):
        assert StandardWebhook(secret).verify(BODY, headers)["type"] == "deploy.succeeded"
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(generate_secret()).verify(BODY, headers)


def test_a_tampered_body_does_not_verify():
    now = int(datetime.now(UTC).timestamp())
    header = sign(SECRET, msg_id=MSG_ID, timestamp=now, body=BODY)
    headers = {"webhook-id": MSG_ID, "webhook-timestamp": str(now), "webhook-signature": header}
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        StandardWebhook(SECRET).verify(BODY.replace(b"succeeded", b"failed"), headers)


@pytest.mark.parametrize("size", [24, 32, 64])
def test_generated_secrets_have_the_standard_shape(size):
    secret = generate_secret(size)
    assert secret.startswith("whsec_")
    assert len(secret_key(secret)) == size


@pytest.mark.parametrize("size", [16, 23, 65])
def test_secret_sizes_outside_24_to_64_bytes_are_refused(size):
    with pytest.raises(InvalidSecret):
        generate_secret(size)


@pytest.mark.parametrize(
    "bad",
    ["", "whsec_", "sk_abc", "whsec_!!!notbase64", "whsec_" + base64.b64encode(b"x" * 8).decode()],
)
def test_malformed_secrets_are_refused_without_echoing_them(bad):
    with pytest.raises(InvalidSecret) as info:
        secret_key(bad)
    if bad[6:]:
        assert bad[6:] not in str(info.value)
