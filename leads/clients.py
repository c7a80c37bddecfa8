"""Stripe's REST API, thin: create one transfer to a connected account. No ORM, no settings.

Requests go through `core.outbound.guarded_request` (timeouts, no redirects, size cap) with
`user_supplied=False`: the base URL is ours (STRIPE_API_BASE), not a caller's.

Every transfer carries an `Idempotency-Key`: Stripe answers a repeated key with the result of the first
request (the same transfer, no second payment), so a caller that does not know whether a request went
through (timeout, crash after the call) simply sends it again with the same key. Errors are classified
for that caller:

- `StripeTransientError`: sending the same request again may succeed and can never pay twice: 5xx, 429,
  409 (a request with the same key is still running), timeouts, connection failures, an oversized or
  unreadable answer to a request that may have been executed;
- `StripeIdempotencyError`: Stripe refused because the key was used with DIFFERENT parameters (e.g. the
  destination changed after a first attempt). The first attempt may have paid: never treat it as failed;
- `StripeRejectedError`: Stripe refused the request (other 4xx). Except for 401/403 (refused before
  the idempotency key is looked at), no transfer exists for this key: Stripe replays an executed
  request's result, including success, to the same key with the same parameters.

Error codes are short (`stripe_http_400_resource_missing`); Stripe's messages are not kept.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import urlencode

from core.outbound import OutboundError, OutboundTimeoutError, ResponseTooLargeError, guarded_request

# Stripe transfer ids: "tr_" + alphanumerics.
_TRANSFER_ID_RE = re.compile(r"tr_[A-Za-z0-9]{1,96}")
_CODE_RE = re.compile(r"[a-z0-9_]{1,60}")


class StripeError(Exception):
    """A Stripe call failed; `code` is short and safe to store and log."""

    transient = False

    def __init__(self, code: str, *, status: int | None = None):
        super().__init__(code)
        self.code = code
        self.status = status  # HTTP status, when Stripe answered


class StripeTransientError(StripeError):
    transient = True


class StripeIdempotencyError(StripeError):
    """The key was used before with other parameters: the first request's outcome is unknown here."""


class StripeRejectedError(StripeError):
    """A 4xx refusal: nothing was transferred under this idempotency key."""


@dataclass(frozen=True)
class StripeTransfer:
    id: str
    amount: int  # cents
    currency: str
    destination: str


class StripeClient:
    def __init__(self, *, api_key: str, base_url: str = "https://api.stripe.com"):
        if not api_key:
            raise ValueError("api_key is required")
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")

    def create_transfer(
        self,
        *,
        amount_cents: int,
        currency: str,
        destination: str,
        idempotency_key: str,
        metadata: dict[str, str] | None = None,
    ) -> StripeTransfer:
        """POST /v1/transfers (form-encoded, like Stripe's own clients)."""
        if not isinstance(amount_cents, int) or amount_cents <= 0:
            raise ValueError("amount_cents must be a positive integer")
        form: list[tuple[str, str]] = [
            ("amount", str(amount_cents)),
            ("currency", currency.lower()),
            ("destination", destination),
        ]
        form += [(f"metadata[{key}]", str(value)) for key, value in (metadata or {}).items()]
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "Idempotency-Key": idempotency_key,
        }
        try:
            response = guarded_request(
                "POST", f"{self.base_url}/v1/transfers", headers=headers, content=urlencode(form), user_supplied=False
            )
        except ResponseTooLargeError:
            raise StripeTransientError("stripe_response_too_large") from None
        except OutboundTimeoutError:
            raise StripeTransientError("stripe_timeout") from None
        except OutboundError:
            raise StripeTransientError("stripe_connection_error") from None

        status = response.status_code
        if status == 200:
            try:
                data = response.json()
                transfer = StripeTransfer(
                    id=str(data["id"]),
                    amount=int(data.get("amount", amount_cents)),
                    currency=str(data.get("currency", currency)).lower(),
                    destination=str(data.get("destination", destination)),
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                # The transfer may exist: asking again with the same key returns it.
                raise StripeTransientError("stripe_bad_response") from None
            if not _TRANSFER_ID_RE.fullmatch(transfer.id):
                raise StripeTransientError("stripe_bad_response")
            return transfer
        error_type, error_code = _error_fields(response.content)
        code = f"stripe_http_{status}" + (f"_{error_code or error_type}" if (error_code or error_type) else "")
        if status in (409, 429) or status >= 500 or status < 400:
            raise StripeTransientError(code, status=status)
        if error_type == "idempotency_error":
            raise StripeIdempotencyError(code, status=status)
        raise StripeRejectedError(code, status=status)


def _error_fields(content: bytes) -> tuple[str, str]:
    """(type, code) from Stripe's error body {"error": {"type": ..., "code": ..., "message": ...}}."""
    try:
        error = json.loads(content).get("error") or {}
        error_type, error_code = str(error.get("type") or ""), str(error.get("code") or "")
    except (ValueError, AttributeError, TypeError):
        return "", ""
    return (
        error_type if _CODE_RE.fullmatch(error_type) else "",
        error_code if _CODE_RE.fullmatch(error_code) else "",
    )
