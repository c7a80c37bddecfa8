"""Webhook signatures, per endpoint scheme, always over the exact body bytes (docs/webhooks.md).

Scheme headers (signed with the CURRENT secret only):
- loverescue: `X-LoveRescue-Signature` = hex HMAC-SHA256(key=secret as UTF-8, msg=body),
  `X-LoveRescue-Timestamp` = the event's time (ISO 8601), `X-LoveRescue-Event` = the event type;
- mark: `X-Mark-Signature` = hex HMAC-SHA256(key=secret as UTF-8, msg=body).

Standard Webhooks headers, on every delivery whatever the scheme:
- `webhook-id` = the event's `evt_...` id (the same on every retry: the receiver's idempotency key);
- `webhook-timestamp` = unix seconds of this attempt;
- `webhook-signature` = `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}." + body)>`, one per valid secret
  (current, then the previous one during a rotation overlap), space-separated.
  The key is the endpoint secret's UTF-8 bytes, so its Standard Webhooks form is
  `"whsec_" + base64(secret.encode("utf-8"))` (`standard_webhooks_secret`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime

from core.time import iso_utc

CONTENT_TYPE = "application/json"


def hex_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def standard_webhooks_secret(secret: str) -> str:
    """The endpoint secret as the `whsec_...` string a Standard Webhooks library takes."""
    return "whsec_" + base64.b64encode(secret.encode("utf-8")).decode("ascii")


def build_headers(
    *,
    scheme: str,
    event_id: str,
    event_type: str,
    event_created_at: datetime,
    body: bytes,
    secrets: Sequence[str],
    timestamp: int,
) -> dict[str, str]:
    """Every header of one attempt. `secrets[0]` is the current secret; any others (the previous one
    during a rotation overlap) add a signature to `webhook-signature` only."""
    if not secrets:
        raise ValueError("an endpoint needs a secret to sign with")
    current = secrets[0]
    headers = {
        "Content-Type": CONTENT_TYPE,
        "User-Agent": "platform-webhooks/1",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(standard_signature(s, event_id, timestamp, body) for s in secrets),
    }
    if scheme == "loverescue":
        headers["X-LoveRescue-Signature"] = hex_signature(current, body)
        headers["X-LoveRescue-Timestamp"] = iso_utc(event_created_at)
        headers["X-LoveRescue-Event"] = event_type
    elif scheme == "mark":
        headers["X-Mark-Signature"] = hex_signature(current, body)
        headers["X-Mark-Event"] = event_type
    return headers
