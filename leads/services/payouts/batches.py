"""Payout batches: one batch pays one platform's claimed payments through its backend
(`leads.payout_backends`), and every state change of a batch lives here.

- `batch_create`: claim the platform's due payments (`SELECT ... FOR UPDATE SKIP LOCKED`) and attach
  them to a new `created` batch (idempotency key `careos-payout-<public id>`), in one transaction; an
  attach that finds a payment already taken by another run rolls back (`AttachConflict`).
- `batch_pay`: audit the attempt (committed before the request leaves), call the backend outside any
  transaction, then record its answer:
  - paid (stripe): `_batch_complete` -> batch `paid` (reference, paid_at), payments `paid`, partner email;
  - manual: `_batch_await_manual` -> `awaiting_manual`; staff pay it and call `payout_batch_mark_paid`;
  - refused (4xx, or not configured on a first attempt): `_batch_fail` -> `failed`, payments released;
  - unknown outcome (5xx, 429, 409, timeout): `_batch_note_retry` -> stays `created`, error noted.
- `payout_batches_resume`: every batch left `created` (crash, transient provider error) is paid again
  with the same idempotency key, so Stripe returns the transfer it already made instead of paying twice.
- Staff, for manual batches: `payout_batch_mark_paid` (with the payment reference) and
  `payout_batch_cancel_manual` (with a reason: the payments are due again).

Every step locks the batch and checks it is still in the state expected, so two runs finishing the same
batch complete it once. Each change is audited in its transaction; refusals are `PayoutBatchError`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.db import transaction

from audit.services import audit_event_record
from core.actors import Actor, ActorType
from core.domain import Invalid
from core.time import iso_utc, utc_now
from leads.models import PartnerPayment, PartnerPlatform, PayoutBatch
from leads.payout_backends import PayoutRejected, PayoutRetry, get_backend
from leads.services.payouts.reports import BatchOutcome, money
from messaging.services import MessagingError, message_queue

logger = logging.getLogger("leads.payouts")

Status = PayoutBatch.Status
PaymentStatus = PartnerPayment.Status
CURRENCY = "USD"
IN_FLIGHT = (Status.CREATED, Status.AWAITING_MANUAL)
MAX_REFERENCE = 100
# Who may appear as the sender of the partner's "you have been paid" email; anyone else sends as system.
EMAIL_ACTOR_TYPES = (ActorType.SYSTEM, ActorType.USER)


class PayoutBatchError(Invalid):
    """A batch write that is not allowed; the message is for staff."""


class AttachConflict(Exception):
    """A claimed payment was attached by another run meanwhile: roll the new batch back."""


def due_payments(platform: PartnerPlatform, now: datetime):
    """Payments of `platform` a run may pay at `now`: pending, in no batch, due at or before now."""
    return PartnerPayment.objects.filter(
        platform=platform, status=PaymentStatus.PENDING, batch__isnull=True, due_at__lte=now, currency=CURRENCY
    )


# --- Create and pay --------------------------------------------------------------------------------


@transaction.atomic
def batch_create(*, platform: PartnerPlatform, now: datetime, actor: Actor) -> PayoutBatch | None:
    """Claim the platform's due payments (skipping any another transaction holds) and attach them to a
    new `created` batch, in one transaction. None if what could be claimed is under the minimum."""
    claimed = list(
        due_payments(platform, now)
        .select_for_update(skip_locked=True, of=("self",))
        .order_by("pk")
        .values_list("pk", "amount", "lead__public_id")
    )
    total = sum((amount for _, amount, _ in claimed), Decimal("0"))
    if not claimed or total < platform.minimum_payout:
        return None
    batch = PayoutBatch(
        platform=platform, amount=total, currency=CURRENCY, backend=platform.payout_backend, status=Status.CREATED
    )
    batch.idempotency_key = f"careos-payout-{batch.public_id}"
    batch.save()
    ids = [pk for pk, _, _ in claimed]
    attached = PartnerPayment.objects.filter(pk__in=ids, batch__isnull=True, status=PaymentStatus.PENDING).update(
        batch=batch
    )
    if attached != len(ids):
        raise AttachConflict()
    _audit(
        "leads.payout_batch_created",
        batch,
        actor,
        platform=platform.slug,
        amount=money(total),
        currency=CURRENCY,
        backend=batch.backend,
        payments=len(ids),
        leads=[lead_id for _, _, lead_id in claimed],
    )
    return batch


def batch_pay(*, batch: PayoutBatch, first_attempt: bool, now: datetime, actor: Actor) -> BatchOutcome:
    """Call the backend (no transaction held), then record what it answered. A backend that calls a
    provider gets a `leads.payout_batch_attempt` audit row committed BEFORE the call, so a worker killed
    during the request still leaves the attempt in the history (issue 10 finding 12): the audit log counts
    every request the provider may have had (the same idempotency key each time, so it paid at most once)."""
    if batch.backend != PartnerPlatform.PayoutBackend.MANUAL:
        with transaction.atomic():
            _audit(
                "leads.payout_batch_attempt",
                batch,
                actor,
                platform=batch.platform.slug,
                backend=batch.backend,
                idempotency_key=batch.idempotency_key,
                first_attempt=first_attempt,
            )
    try:
        result = get_backend(batch.backend).pay(batch, first_attempt=first_attempt)
    except PayoutRetry as exc:
        return _batch_note_retry(batch.pk, exc, actor=actor)
    except PayoutRejected as exc:
        return _batch_fail(batch.pk, exc, actor=actor)
    if result.status == Status.PAID:
        return _batch_complete(batch.pk, reference=result.reference, now=now, actor=actor)
    return _batch_await_manual(batch.pk, actor=actor)


def payout_batches_resume(*, now: datetime | None = None, dry_run: bool = False, actor: Actor) -> list[BatchOutcome]:
    """Finish every batch left `created`: call its backend again with the same idempotency key."""
    now = now or utc_now()
    outcomes = []
    batches = PayoutBatch.objects.filter(status=Status.CREATED).select_related("platform").order_by("created_at", "pk")
    for batch in batches:
        if dry_run:
            outcomes.append(_outcome(batch, "would_resume"))
            continue
        try:
            outcomes.append(batch_pay(batch=batch, first_attempt=False, now=now, actor=actor))
        except Exception:
            logger.exception("payout batch %s: resume failed; it stays created", batch.public_id)
            outcomes.append(_outcome(batch, "error", "unexpected error; see the logs"))
    return outcomes


# --- What the backend answered ---------------------------------------------------------------------


def _locked_batch(batch_pk: int) -> PayoutBatch:
    return PayoutBatch.objects.select_for_update(of=("self",)).select_related("platform").get(pk=batch_pk)


def _outcome(batch: PayoutBatch, status: str | None = None, error: str | None = None) -> BatchOutcome:
    return BatchOutcome(
        batch_id=batch.public_id,
        platform=batch.platform.slug,
        amount=money(batch.amount),
        payments=batch.payments.count(),
        status=status or batch.status,
        error=batch.error if error is None else error,
    )


@transaction.atomic
def _batch_complete(batch_pk: int, *, reference: str, now: datetime, actor: Actor) -> BatchOutcome:
    """The provider paid: batch and payments `paid`, audited, partner emailed. A batch another run
    already finished is left as it is."""
    batch = _locked_batch(batch_pk)
    if batch.status != Status.CREATED:
        return _outcome(batch)
    count = _mark_paid(batch, reference=reference, now=now, actor=actor)
    logger.info("payout batch %s paid (%s payments, %s %s)", batch.public_id, count, batch.amount, batch.currency)
    return _outcome(batch)


def _mark_paid(batch: PayoutBatch, *, reference: str, now: datetime, actor: Actor) -> int:
    batch.status = Status.PAID
    batch.provider_reference = reference[:MAX_REFERENCE]
    batch.paid_at = now
    batch.error = ""
    batch.save(update_fields=["status", "provider_reference", "paid_at", "error"])
    count = batch.payments.filter(status=PaymentStatus.PENDING).update(status=PaymentStatus.PAID, paid_at=now)
    _audit(
        "leads.payout_batch_paid",
        batch,
        actor,
        platform=batch.platform.slug,
        amount=money(batch.amount),
        currency=batch.currency,
        backend=batch.backend,
        payments=count,
        provider_reference=batch.provider_reference,
    )
    _notify_partner(batch, count=count, actor=actor)
    return count


@transaction.atomic
def _batch_await_manual(batch_pk: int, *, actor: Actor) -> BatchOutcome:
    batch = _locked_batch(batch_pk)
    if batch.status != Status.CREATED:
        return _outcome(batch)
    batch.status = Status.AWAITING_MANUAL
    batch.error = ""
    batch.save(update_fields=["status", "error"])
    _audit(
        "leads.payout_batch_awaiting_manual",
        batch,
        actor,
        platform=batch.platform.slug,
        amount=money(batch.amount),
        currency=batch.currency,
    )
    return _outcome(batch)


@transaction.atomic
def _batch_fail(batch_pk: int, exc: PayoutRejected, *, actor: Actor) -> BatchOutcome:
    """Nothing was paid under this batch's key: fail it and release its payments for the next run."""
    batch = _locked_batch(batch_pk)
    if batch.status != Status.CREATED:
        return _outcome(batch)
    released = _release_payments(batch)
    batch.status = Status.FAILED
    batch.error = exc.message[:500]
    batch.save(update_fields=["status", "error"])
    _audit(
        "leads.payout_batch_failed",
        batch,
        actor,
        platform=batch.platform.slug,
        amount=money(batch.amount),
        error_code=exc.code,
        released=released,
    )
    logger.warning("payout batch %s failed (%s); %s payments released", batch.public_id, exc.code, len(released))
    return BatchOutcome(
        batch.public_id, batch.platform.slug, money(batch.amount), len(released), batch.status, batch.error
    )


@transaction.atomic
def _batch_note_retry(batch_pk: int, exc: PayoutRetry, *, actor: Actor) -> BatchOutcome:
    """Outcome unknown or provider unavailable: keep the batch `created` (resumed next run), note why."""
    batch = _locked_batch(batch_pk)
    if batch.status != Status.CREATED:
        return _outcome(batch)
    batch.error = exc.message[:500]
    batch.save(update_fields=["error"])
    _audit("leads.payout_batch_retry_later", batch, actor, platform=batch.platform.slug, error_code=exc.code)
    logger.warning("payout batch %s: %s; stays created for the next run", batch.public_id, exc.code)
    return _outcome(batch)


def _release_payments(batch: PayoutBatch) -> list[str]:
    """Detach the batch's payments (pending again for the next run); their lead ids, in payment order."""
    released = list(batch.payments.order_by("pk").values_list("pk", "lead__public_id"))
    PartnerPayment.objects.filter(pk__in=[pk for pk, _ in released]).update(batch=None)
    return [lead_id for _, lead_id in released]


# --- Staff: manual batches -------------------------------------------------------------------------


@transaction.atomic
def payout_batch_mark_paid(
    *, batch: PayoutBatch, reference: str, actor: Actor, now: datetime | None = None
) -> PayoutBatch:
    """Staff paid an `awaiting_manual` batch outside CareOS: record the reference (bank transfer id...),
    mark the batch and its payments paid, audit, email the partner."""
    reference = (reference or "").strip() if isinstance(reference, str) else ""
    if not reference:
        raise PayoutBatchError("Enter the payment reference (bank transfer id, cheque number...).")
    if len(reference) > MAX_REFERENCE:
        raise PayoutBatchError(f"The reference must be at most {MAX_REFERENCE} characters.")
    locked = _locked_batch(batch.pk)
    if locked.status != Status.AWAITING_MANUAL:
        raise PayoutBatchError(
            f"Batch {locked.public_id} is {locked.get_status_display().lower()}: only a batch awaiting manual "
            "payment can be marked paid."
        )
    _mark_paid(locked, reference=reference, now=now or utc_now(), actor=actor)
    return locked


@transaction.atomic
def payout_batch_cancel_manual(*, batch: PayoutBatch, reason: str, actor: Actor) -> PayoutBatch:
    """Staff will not pay an `awaiting_manual` batch (wrong bank details, partner on hold...): nothing
    left CareOS under it, so the batch becomes `failed` with the reason and its payments go back to
    pending-and-unbatched for the next run. Audited with the released lead ids."""
    reason = (reason or "").strip() if isinstance(reason, str) else ""
    if not reason:
        raise PayoutBatchError("Enter the reason for cancelling the batch.")
    locked = _locked_batch(batch.pk)
    if locked.status != Status.AWAITING_MANUAL:
        raise PayoutBatchError(
            f"Batch {locked.public_id} is {locked.get_status_display().lower()}: only a batch awaiting manual "
            "payment can be cancelled here."
        )
    released = _release_payments(locked)
    locked.status = Status.FAILED
    locked.error = f"cancelled by staff: {reason}"[:500]
    locked.save(update_fields=["status", "error"])
    _audit(
        "leads.payout_batch_cancelled",
        locked,
        actor,
        platform=locked.platform.slug,
        amount=money(locked.amount),
        released=released,
    )
    return locked


@transaction.atomic
def payout_batches_export_record(*, batch_public_ids: list[str], actor: Actor) -> None:
    """Audit a CSV export of these batches' payments (before the file is streamed)."""
    audit_event_record(
        action="leads.payout_export",
        actor=actor,
        subject_type="leads.payout_batch",
        subject_id=batch_public_ids[0] if len(batch_public_ids) == 1 else "",
        metadata={"batches": list(batch_public_ids)},
    )


# --- Helpers ---------------------------------------------------------------------------------------


def _audit(action: str, batch: PayoutBatch, actor: Actor, **metadata) -> None:
    audit_event_record(
        action=action,
        actor=actor,
        subject_type="leads.payout_batch",
        subject_id=batch.public_id,
        metadata=metadata,
    )


def _notify_partner(batch: PayoutBatch, *, count: int, actor: Actor) -> bool:
    """Queue the "you have been paid" email to the platform's contact (inside the paying transaction,
    so it exists iff the batch is paid). No contact email: nothing is sent."""
    recipient = batch.platform.contact_email
    if not recipient:
        return False
    body = (
        f"Hello {batch.platform.name},\n\n"
        f"CareOS has paid out {money(batch.amount)} {batch.currency} for {count} "
        f"referred lead{'s' if count != 1 else ''}.\n\n"
        f"Payout: {batch.public_id}\n"
        f"Reference: {batch.provider_reference}\n"
        f"Method: {batch.get_backend_display()}\n"
        f"Paid at: {iso_utc(batch.paid_at)}\n\n"
        "Thank you for the referrals.\nCareOS"
    )
    try:
        message_queue(
            channel="email",
            recipient=recipient,
            subject=f"CareOS payout {batch.public_id}: {money(batch.amount)} {batch.currency}",
            body=body,
            purpose="careos.payout_paid",
            actor=actor if actor.type in EMAIL_ACTOR_TYPES else Actor.system(actor.id),
        )
    except MessagingError as exc:  # a bad contact address must not undo a payout
        logger.warning("payout batch %s: partner email not queued (%s)", batch.public_id, type(exc).__name__)
        return False
    return True
