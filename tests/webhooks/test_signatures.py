"""Every signature a real receiver on 127.0.0.1 gets is checked by an implementation that is not ours:
the `standardwebhooks` package (webhook-* headers), plain hmac (X-LoveRescue-Signature, X-Mark-Signature),
and, for LoveRescue, the spec's own Node.js verifySignature run by `node`."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from core.actors import Actor
from core.time import iso_utc
from tests.conftest import skip_or_fail
from tests.webhooks.factories import attempt, hex_hmac, publish, register
from webhooks import services
from webhooks.models import WebhookAttempt, WebhookDelivery
from webhooks.signing import standard_webhooks_secret

pytestmark = pytest.mark.django_db

# Verbatim from specs/loverescue-integration-api.md, "Signature Verification (Node.js)".
SPEC_NODE_SNIPPET = """const crypto = require('crypto');

function verifySignature(rawBody, signature, secret) {
  const expected = crypto
    .createHmac('sha256', secret)
    .update(rawBody, 'utf8')
    .digest('hex');
  return crypto.timingSafeEqual(
    Buffer.from(signature, 'hex'),
    Buffer.from(expected, 'hex')
  );
}
"""
NODE_HARNESS = """
const chunks = [];
process.stdin.on('data', (chunk) => chunks.push(chunk));
process.stdin.on('end', () => {
  const rawBody = process.argv[4] === 'string' ? Buffer.concat(chunks).toString('utf8') : Buffer.concat(chunks);
  process.stdout.write(verifySignature(rawBody, process.argv[2], process.argv[3]) ? 'valid' : 'invalid');
});
"""
SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "specs" / "loverescue-integration-api.md"


def standard_verify(secret: str, request) -> dict:
    headers = {name: value for name, value in request.headers.items()}
    return Webhook(standard_webhooks_secret(secret)).verify(request.body, headers)


def node_verify(tmp_path: Path, body: bytes, signature: str, secret: str, mode: str = "buffer") -> str:
    script = tmp_path / "verify.js"
    script.write_text(SPEC_NODE_SNIPPET + NODE_HARNESS)
    result = subprocess.run(
        ["node", str(script), signature, secret, mode], input=body, capture_output=True, timeout=30, check=True
    )
    return result.stdout.decode()


def test_spec_snippet_is_verbatim():
    if not SPEC_PATH.exists():
        pytest.skip("specs folder not beside the repository")
    assert SPEC_NODE_SNIPPET.strip() in SPEC_PATH.read_text()


def test_loverescue_delivery_verifies_with_every_implementation(receiver, enqueued, tmp_path):
    endpoint, secret = register(receiver.url("/hooks/loverescue"), scheme="loverescue")
    assert len(secret) == 64 and int(secret, 16) >= 0  # 32 random bytes, hex, as the spec shows
    payload = {
        "alertId": "alert-1",
        "clientId": "c-1",
        "alertType": "CRISIS",
        "severity": "CRITICAL",
        "message": "Crisis pathway triggered — safety plan activation recommended",
        "createdAt": "x",
    }
    event = publish(endpoint, event_type="alert.created", payload=payload)
    delivery = WebhookDelivery.objects.get(event=event)

    assert attempt(delivery) == "succeeded"

    (request,) = receiver.requests
    assert request.method == "POST" and request.path == "/hooks/loverescue"
    assert request.body == event.body
    assert json.loads(request.body) == payload
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-LoveRescue-Event"] == "alert.created"
    assert request.headers["X-LoveRescue-Timestamp"] == iso_utc(event.created_at)
    assert request.headers["X-LoveRescue-Signature"] == hex_hmac(secret, request.body)
    assert "X-Mark-Signature" not in request.headers
    assert request.headers["webhook-id"] == event.public_id and event.public_id.startswith("evt_")
    assert standard_verify(secret, request) == payload
    with pytest.raises(WebhookVerificationError):
        standard_verify("not-the-secret-0000000000", request)
    # The recorded attempt keeps the signature headers but never the secret.
    recorded = WebhookAttempt.objects.get(delivery=delivery)
    assert recorded.status_code == 200
    assert recorded.request_headers["X-LoveRescue-Signature"] == request.headers["X-LoveRescue-Signature"]
    assert secret not in json.dumps(recorded.request_headers)

    if not shutil.which("node"):
        skip_or_fail("needs node to run the LoveRescue spec's verifySignature")
    signature = request.headers["X-LoveRescue-Signature"]
    assert node_verify(tmp_path, request.body, signature, secret) == "valid"
    assert node_verify(tmp_path, request.body, signature, secret, mode="string") == "valid"
    assert node_verify(tmp_path, request.body, signature, "f" * 64) == "invalid"
    assert node_verify(tmp_path, request.body + b" ", signature, secret) == "invalid"


def test_mark_delivery_verifies_and_carries_its_own_event_id(receiver, enqueued):
    endpoint, secret = register(
        receiver.url("/webhooks/mark"),
        scheme="mark",
        events=["conversation.created"],
        secret="your_webhook_secret_123",
        owner_type="organization",
        owner_id="org_1",
    )
    assert secret == "your_webhook_secret_123"  # Mark lets the client choose the secret
    event = publish(
        endpoint,
        event_type="conversation.created",
        payload=lambda event_id, created: {
            "id": event_id,
            "type": "conversation.created",
            "created": iso_utc(created),
            "data": {"conversation_id": "conv_1"},
        },
    )
    assert attempt(WebhookDelivery.objects.get(event=event)) == "succeeded"

    (request,) = receiver.requests
    body = json.loads(request.body)
    assert body["id"] == event.public_id == request.headers["webhook-id"]
    assert request.headers["X-Mark-Signature"] == hex_hmac(secret, request.body)
    assert "X-LoveRescue-Signature" not in request.headers
    assert standard_verify(secret, request)["data"] == {"conversation_id": "conv_1"}


def test_standard_scheme_sends_only_standard_headers(receiver, enqueued):
    endpoint, secret = register(receiver.url("/std"), scheme="standard", events=["*"])
    event = publish(endpoint, event_type="anything.happened", payload={"é": "ü"})
    assert attempt(WebhookDelivery.objects.get(event=event)) == "succeeded"
    (request,) = receiver.requests
    assert request.body == b'{"\\u00e9":"\\u00fc"}'  # compact ASCII JSON: the same bytes for every receiver
    assert not [h for h in request.headers if h.lower().startswith("x-")]
    assert standard_verify(secret, request) == {"é": "ü"}
    # webhook-timestamp is this attempt's time (replay protection), close to now.
    assert abs(int(request.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 60


def test_rotation_overlap_signs_with_both_then_revocation_leaves_the_new(receiver, enqueued):
    endpoint, old_secret = register(receiver.url("/r"), scheme="loverescue")
    new_secret = services.webhook_endpoint_rotate_secret(endpoint=endpoint, actor=Actor(type="user", id="1"))
    assert new_secret != old_secret
    endpoint.refresh_from_db()
    assert endpoint.previous_secret == old_secret
    assert (
        timedelta(hours=23, minutes=59) < endpoint.previous_secret_expires_at - datetime.now(UTC) <= timedelta(hours=24)
    )

    attempt(WebhookDelivery.objects.get(event=publish(endpoint)))
    request = receiver.requests[-1]
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert standard_verify(new_secret, request) and standard_verify(old_secret, request)
    # Each signature verifies with its own secret only.
    for secret, signature in zip((new_secret, old_secret), signatures, strict=True):
        headers = {**dict(request.headers.items()), "webhook-signature": signature}
        Webhook(standard_webhooks_secret(secret)).verify(request.body, headers)
    # The scheme header is signed with the NEW secret during the overlap.
    assert request.headers["X-LoveRescue-Signature"] == hex_hmac(new_secret, request.body)

    assert services.webhook_endpoint_revoke_previous_secret(endpoint=endpoint, actor=Actor(type="user", id="1"))
    attempt(WebhookDelivery.objects.get(event=publish(endpoint)))
    request = receiver.requests[-1]
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    assert standard_verify(new_secret, request)
    with pytest.raises(WebhookVerificationError):
        standard_verify(old_secret, request)


def test_previous_secret_stops_signing_when_the_overlap_ends(receiver, enqueued):
    endpoint, old_secret = register(receiver.url("/r"), scheme="mark", events=["*"])
    new_secret = services.webhook_endpoint_rotate_secret(
        endpoint=endpoint, overlap=timedelta(hours=1), actor=Actor(type="user", id="1")
    )
    type(endpoint).objects.filter(pk=endpoint.pk).update(
        previous_secret_expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    attempt(WebhookDelivery.objects.get(event=publish(endpoint)))
    request = receiver.requests[-1]
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    assert standard_verify(new_secret, request)
    with pytest.raises(WebhookVerificationError):
        standard_verify(old_secret, request)


def test_standard_secret_form_is_base64_of_the_secret():
    assert standard_webhooks_secret("abc") == "whsec_" + base64.b64encode(b"abc").decode()
