"""Payout backends: how one PayoutBatch reaches the partner. Chosen per platform (`payout_backend`), and
fixed on the batch when it is created (`PayoutBatch.backend`), so changing a platform's backend never
changes how a batch already in flight is paid.

- `manual` (default): nothing is sent; the batch waits for staff (`awaiting_manual`), who pay it
  outside CareOS (bank transfer), export its payments as CSV and mark it paid with a reference.
- `stripe`: a transfer of the batch amount to the platform's connected account
  (`PartnerPlatform.stripe_account_id`, "acct_...") through Stripe's REST API (`leads.clients`), with
  the batch's idempotency key, so calling `pay` again for the same batch never pays twice.

`pay(batch, first_attempt=...)` returns a `PayoutResult` or raises:

- `PayoutRetry`: nothing is known to be final; the batch stays `created` and is sent again (same key)
  by the next run. Used for 5xx/429/409/timeouts and for anything that leaves the outcome unknown;
- `PayoutRejected`: the provider refused, or a first attempt could not be sent at all (no API key, no
  destination): no money moved under this key, so the batch fails and its payments are released.

A missing configuration (or credentials Stripe refuses: 401/403, answered before the idempotency key is
looked at) on a batch that was already attempted is a `PayoutRetry`, not a rejection: an earlier
attempt may have paid, so only a person may release those payments.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from leads.clients import StripeClient, StripeError, StripeRejectedError, StripeTransientError
from leads.models import PartnerPlatform, PayoutBatch

Backend = PartnerPlatform.PayoutBackend


class PayoutError(Exception):
    def __init__(self, code: str, message: str = ""):
        super().__init__(message or code)
        self.code = code
        self.message = message or code


class PayoutRetry(PayoutError):
    """Leave the batch `created`; the next run calls the backend again with the same key."""


class PayoutRejected(PayoutError):
    """Nothing was paid under this batch's key: fail the batch and release its payments."""


@dataclass(frozen=True)
class PayoutResult:
    status: str  # PayoutBatch.Status.PAID or AWAITING_MANUAL
    reference: str = ""


class ManualBackend:
    name = Backend.MANUAL

    def pay(self, batch: PayoutBatch, *, first_attempt: bool) -> PayoutResult:
        return PayoutResult(status=PayoutBatch.Status.AWAITING_MANUAL)


def amount_in_cents(amount: Decimal) -> int:
    cents = (Decimal(amount) * 100).quantize(Decimal("1"))
    if cents != Decimal(amount) * 100:
        raise ValueError("amount has more than two decimal places")
    return int(cents)


class StripeBackend:
    name = Backend.STRIPE

    def pay(self, batch: PayoutBatch, *, first_attempt: bool) -> PayoutResult:
        unavailable = PayoutRejected if first_attempt else PayoutRetry
        api_key = settings.STRIPE_API_KEY
        if not api_key:
            raise unavailable("stripe_not_configured", "Stripe is not configured: STRIPE_API_KEY is not set.")
        destination = (batch.platform.stripe_account_id or "").strip()
        if not destination:
            raise unavailable(
                "stripe_no_destination",
                f"Platform {batch.platform.slug} has no Stripe connected account (stripe_account_id).",
            )
        client = StripeClient(api_key=api_key, base_url=settings.STRIPE_API_BASE)
        try:
            transfer = client.create_transfer(
                amount_cents=amount_in_cents(batch.amount),
                currency=batch.currency,
                destination=destination,
                idempotency_key=batch.idempotency_key,
                metadata={"batch": batch.public_id},
            )
        except StripeTransientError as exc:
            raise PayoutRetry(exc.code, f"Stripe did not answer conclusively ({exc.code}); retried next run.") from None
        except StripeRejectedError as exc:
            if exc.status in (401, 403):  # refused before the key is looked at: says nothing about earlier tries
                raise unavailable(exc.code, f"Stripe refused our credentials ({exc.code}).") from None
            raise PayoutRejected(exc.code, f"Stripe refused the transfer ({exc.code}).") from None
        except StripeError as exc:  # idempotency conflict: an earlier attempt may have paid
            raise PayoutRetry(
                exc.code, f"Stripe reports a conflicting earlier request ({exc.code}); needs staff review."
            ) from None
        return PayoutResult(status=PayoutBatch.Status.PAID, reference=transfer.id)


BACKENDS = {Backend.MANUAL: ManualBackend, Backend.STRIPE: StripeBackend}


def get_backend(name: str):
    try:
        return BACKENDS[name]()
    except KeyError:
        raise PayoutRetry("unknown_backend", f"Unknown payout backend {name!r}.") from None
