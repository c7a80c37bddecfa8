"""Twilio's REST API, thin: send one message, compute a webhook signature. No ORM, no settings.

Requests go through `core.outbound.guarded_request` (timeouts, no redirects, size cap) with
`user_supplied=False`: the base URL is ours (TWILIO_API_BASE_URL), not a caller's. Errors carry short
codes only: Twilio's error messages quote the destination number, so they are never kept or logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from core.outbound import OutboundError, OutboundTimeoutError, ResponseTooLargeError, guarded_request

API_VERSION = "2010-04-01"
# Twilio message SIDs: SM... (SMS) or MM... (MMS), 34 characters; accept what its docs allow.
_SID_RE = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
# Messaging Service SIDs (MG...: Twilio picks the sending number) and Content SIDs (HX...: templates).
MESSAGING_SERVICE_SID_RE = re.compile(r"MG[0-9a-fA-F]{32}")
CONTENT_SID_RE = re.compile(r"HX[0-9a-fA-F]{32}")


class TwilioError(Exception):
    """A send failed. `code` is short and PHI-free ("twilio_http_500", "twilio_error_21211")."""

    transient = False

    def __init__(self, code: str, *, retry_after: float | None = None):
        super().__init__(code)
        self.code = code
        self.retry_after = retry_after


class TwilioTransientError(TwilioError):
    """Worth retrying: 5xx, 429, timeouts, connection failures."""

    transient = True


class TwilioPermanentError(TwilioError):
    """Retrying will not help: 4xx (except 429), an unexpected answer, a refused configuration."""


@dataclass(frozen=True)
class TwilioMessage:
    sid: str
    status: str


class TwilioClient:
    def __init__(self, *, account_sid: str, auth_token: str, base_url: str = "https://api.twilio.com"):
        if not account_sid or not auth_token:
            raise TwilioPermanentError("twilio_not_configured")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.base_url = base_url.rstrip("/")

    @property
    def messages_url(self) -> str:
        return f"{self.base_url}/{API_VERSION}/Accounts/{quote(self.account_sid, safe='')}/Messages.json"

    def send_message(
        self,
        *,
        to: str,
        from_: str = "",
        body: str = "",
        status_callback: str = "",
        messaging_service_sid: str = "",
        content_sid: str = "",
        content_variables: str = "",
        media_url: str = "",
    ) -> TwilioMessage:
        """POST /2010-04-01/Accounts/{sid}/Messages.json; `to`/`from_` already carry `whatsapp:` if needed.

        Sent as `from_` or through `messaging_service_sid` (MessagingServiceSid: Twilio picks the number).
        A template (`content_sid`, ContentSid + ContentVariables JSON) replaces the Body; `media_url`
        (MediaUrl) attaches a file Twilio fetches."""
        if not from_ and not messaging_service_sid:
            raise TwilioPermanentError("twilio_sender_missing")
        form = {"To": to}
        if messaging_service_sid:
            form["MessagingServiceSid"] = messaging_service_sid
        else:
            form["From"] = from_
        if content_sid:
            form["ContentSid"] = content_sid
            if content_variables:
                form["ContentVariables"] = content_variables
        elif body:
            form["Body"] = body
        if media_url:
            form["MediaUrl"] = media_url
        if "Body" not in form and "ContentSid" not in form and "MediaUrl" not in form:
            raise TwilioPermanentError("twilio_empty_message")
        if status_callback:
            form["StatusCallback"] = status_callback
        credentials = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode("ascii")
        headers = {
            "Authorization": f"Basic {credentials}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        try:
            response = guarded_request(
                "POST", self.messages_url, headers=headers, content=urlencode(form), user_supplied=False
            )
        except ResponseTooLargeError:
            # Twilio may have accepted it: retrying could send it twice.
            raise TwilioPermanentError("twilio_response_too_large") from None
        except OutboundTimeoutError:
            raise TwilioTransientError("twilio_timeout") from None
        except OutboundError:
            raise TwilioTransientError("twilio_connection_error") from None

        status = response.status_code
        if status in (200, 201):
            try:
                data = response.json()
                sid, message_status = str(data["sid"]), str(data.get("status", ""))
            except (ValueError, KeyError, TypeError):
                raise TwilioPermanentError("twilio_bad_response") from None
            if not _SID_RE.fullmatch(sid):
                raise TwilioPermanentError("twilio_bad_response")
            return TwilioMessage(sid=sid, status=message_status)
        code = f"twilio_http_{status}"
        error_code = _error_code(response.content)
        if error_code:
            code += f"_error_{error_code}"
        if status == 429 or status >= 500:
            raise TwilioTransientError(code, retry_after=_retry_after(response.headers.get("Retry-After", "")))
        raise TwilioPermanentError(code)


def _error_code(content: bytes) -> str:
    """Twilio's numeric error code from an error body ({"code": 21211, "message": "...", ...}), or ""."""
    try:
        code = json.loads(content).get("code")
    except (ValueError, AttributeError):
        return ""
    return str(code) if isinstance(code, int) else ""


def _retry_after(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


# --- Status mapping --------------------------------------------------------------------------------

# Twilio MessageStatus -> outbox status. Anything else (receiving, received, partially_delivered...)
# is ignored.
STATUS_MAP = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "failed": "failed",
    "undelivered": "failed",
    "canceled": "failed",
}


def outbox_status(message_status: str) -> str | None:
    return STATUS_MAP.get((message_status or "").strip().lower())


def is_message_sid(value: str) -> bool:
    return bool(_SID_RE.fullmatch(value or ""))


# --- Webhook signatures ----------------------------------------------------------------------------


def _items(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    if hasattr(params, "lists"):  # Django QueryDict: every value of a repeated key
        return [(key, value) for key, values in params.lists() for value in values]
    if isinstance(params, Mapping):
        return list(params.items())
    return list(params)


def compute_signature(auth_token: str, url: str, params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """Twilio's X-Twilio-Signature: base64(HMAC-SHA1(auth token, url + key1 + value1 + key2 + value2...))
    with the POST parameters sorted by key (case-sensitive), a repeated key's values in sorted order."""
    data = url + "".join(key + value for key, value in sorted(_items(params)))
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_is_valid(auth_token: str, url: str, params, signature: str) -> bool:
    if not auth_token or not signature:
        return False
    expected = compute_signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", errors="replace"))
