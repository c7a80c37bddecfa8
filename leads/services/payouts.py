"""Partner payouts and payment status transitions (docs/careos.md, "Payouts").

A run (`payouts_process`: monthly beat task, `manage.py process_partner_payments`, admin action):

1. resumes every batch left `created` by an earlier run (crash or transient provider error between the
   batch row and the provider's answer): the backend is called again with the batch's idempotency key,
   so Stripe returns the transfer it already made instead of paying twice;
2. for each active platform, claims its due payments (pending, in no batch, `due_at <= now`): if their
   sum reaches `minimum_payout`, ONE transaction creates a `PayoutBatch` (`created`, idempotency key
   `careos-payout-<public id>`) and attaches them, with `SELECT ... FOR UPDATE SKIP LOCKED` so two runs
   never take the same payment (and an attach that finds a payment already taken rolls back);
3. outside any transaction, pays the batch through its backend, then in a transaction:
   - paid (stripe): batch `paid` (provider reference, paid_at), its payments `paid`, audit, partner email;
   - manual: batch `awaiting_manual`; staff pay it and call `payout_batch_mark_paid` (admin);
   - refused (4xx, or not configured on a first attempt): batch `failed`, payments released (batch null)
     for the next run, audited;
   - unknown outcome (5xx, 429, 409, timeout): batch stays `created`, error noted; the next run resumes it.

Every step that changes a batch locks it and checks it is still in the state expected, so two runs
(or a run and a resumed run) finishing the same batch complete it once. Money is never paid twice
(one idempotency key per batch, payments attached to one batch) and never lost (a payment is either
in no batch, or in a batch that is created/awaiting/paid, or released by a failure).

Payment transitions (each audited, invalid ones raise `PaymentTransitionError`):
pending -> disputed (`payment_dispute`, reason), disputed|cancelled -> pending (`payment_reinstate`),
pending|disputed -> cancelled (`payment_cancel`, reason). `paid` is final; a payment in a batch that is
in flight (created / awaiting_manual) cannot change.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import transaction

from audit.services import audit_event_record
from core.time import iso_utc, utc_now
from leads.models import PartnerPayment, PartnerPlatform, PayoutBatch
from leads.payout_backends import PayoutRejected, PayoutRetry, get_backend
from messaging.services import MessagingError, message_queue

logger = logging.getLogger("leads.payouts")

Status = PayoutBatch.Status
PaymentStatus = PartnerPayment.Status
CURRENCY = "USD"
IN_FLIGHT = (Status.CREATED, Status.AWAITING_MANUAL)
MAX_REASON = 300
MAX_REFERENCE = 100


class PaymentTransitionError(ValueError):
    """A payment status change that is not allowed; the message is for staff."""


class PayoutBatchError(ValueError):
    """A batch write that is not allowed; the message is for staff."""


class _AttachConflict(Exception):
    """A claimed payment was attached by another run meanwhile: roll the new batch back."""


# --- Report ----------------------------------------------------------------------------------------


@dataclass
class BatchOutcome:
    batch_id: str
    platform: str
    amount: str
    payments: int
    status: str  # the batch status after this run, "would_resume" in a dry run, "error"
    error: str = ""


@dataclass
class PlatformReport:
    platform: str
    backend: str
    minimum_payout: str
    due_count: int
    due_amount: str
    # nothing_due | below_minimum | held (platform suspended) | would_pay (dry run) | claimed_elsewhere |
    # paid | awaiting_manual | created (retried next run) | failed | error
    status: str
    batch_id: str = ""
    error: str = ""


@dataclass
class PayoutReport:
    now: datetime
    dry_run: bool
    resumed: list[BatchOutcome] = field(default_factory=list)
    platforms: list[PlatformReport] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "now": iso_utc(self.now),
            "dry_run": self.dry_run,
            "resumed": [asdict(outcome) for outcome in self.resumed],
            "platforms": [asdict(platform) for platform in self.platforms],
        }


def _money(value: Decimal | None) -> str:
    return str((value or Decimal("0")).quantize(Decimal("0.01")))


# --- The run ---------------------------------------------------------------------------------------


def due_payments(platform: PartnerPlatform, now: datetime):
    """Payments of `platform` a run may pay at `now`: pending, in no batch, due at or before now."""
    return PartnerPayment.objects.filter(
        platform=platform, status=PaymentStatus.PENDING, batch__isnull=True, due_at__lte=now, currency=CURRENCY
    )


def payouts_process(
    *, now: datetime | None = None, dry_run: bool = False, actor_type: str, actor_id: str
) -> PayoutReport:
    """One payout run over every platform (see the module docstring). A dry run reads only: it writes
    nothing and calls no provider. An unexpected error on one batch or platform is logged and reported,
    and the run goes on with the others (the batch, if any, stays `created` and is resumed next run)."""
    now = now or utc_now()
    report = PayoutReport(now=now, dry_run=dry_run)
    report.resumed = payout_batches_resume(now=now, dry_run=dry_run, actor_type=actor_type, actor_id=actor_id)
    for platform in PartnerPlatform.objects.order_by("slug"):
        report.platforms.append(_process_platform(platform, now=now, dry_run=dry_run, actor=(actor_type, actor_id)))
    return report


def payout_batches_resume(
    *, now: datetime | None = None, dry_run: bool = False, actor_type: str, actor_id: str
) -> list[BatchOutcome]:
    """Finish every batch left `created`: call its backend again with the same idempotency key."""
    now = now or utc_now()
    outcomes = []
    batches = PayoutBatch.objects.filter(status=Status.CREATED).select_related("platform").order_by("created_at", "pk")
    for batch in batches:
        if dry_run:
            outcomes.append(_outcome(batch, "would_resume"))
            continue
        try:
            outcomes.append(_batch_pay(batch, first_attempt=False, now=now, actor=(actor_type, actor_id)))
        except Exception:
            logger.exception("payout batch %s: resume failed; it stays created", batch.public_id)
            outcomes.append(_outcome(batch, "error", "unexpected error; see the logs"))
    return outcomes


def _process_platform(platform: PartnerPlatform, *, now: datetime, dry_run: bool, actor) -> PlatformReport:
    due = due_payments(platform, now).values_list("amount", flat=True)
    amounts = list(due)
    total = sum(amounts, Decimal("0"))
    report = PlatformReport(
        platform=platform.slug,
        backend=platform.payout_backend,
        minimum_payout=_money(platform.minimum_payout),
        due_count=len(amounts),
        due_amount=_money(total),
        status="nothing_due",
    )
    if not amounts:
        return report
    if not platform.is_active:
        report.status = "held"
        return report
    if total < platform.minimum_payout:
        report.status = "below_minimum"
        return report
    if dry_run:
        report.status = "would_pay"
        return report
    try:
        batch = _batch_create(platform, now=now, actor=actor)
    except _AttachConflict:
        batch = None
    except Exception:
        logger.exception("payouts for %s: batch creation failed", platform.slug)
        report.status, report.error = "error", "unexpected error; see the logs"
        return report
    if batch is None:
        report.status = "claimed_elsewhere"  # another run holds (or took) these payments, or under minimum
        return report
    report.batch_id = batch.public_id
    try:
        outcome = _batch_pay(batch, first_attempt=True, now=now, actor=actor)
    except Exception:
        logger.exception("payout batch %s: payment step failed; it stays created", batch.public_id)
        report.status, report.error = "error", "unexpected error; the batch is resumed next run"
        return report
    report.status, report.error = outcome.status, outcome.error
    return report


@transaction.atomic
def _batch_create(platform: PartnerPlatform, *, now: datetime, actor) -> PayoutBatch | None:
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
        raise _AttachConflict()
    _audit(
        "leads.payout_batch_created",
        batch,
        actor,
        platform=platform.slug,
        amount=_money(total),
        currency=CURRENCY,
        backend=batch.backend,
        payments=len(ids),
        leads=[lead_id for _, _, lead_id in claimed],
    )
    return batch


def _batch_pay(batch: PayoutBatch, *, first_attempt: bool, now: datetime, actor) -> BatchOutcome:
    """Call the backend (no transaction held), then record what it answered."""
    try:
        result = get_backend(batch.backend).pay(batch, first_attempt=first_attempt)
    except PayoutRetry as exc:
        return _batch_note_retry(batch.pk, exc, actor=actor)
    except PayoutRejected as exc:
        return _batch_fail(batch.pk, exc, actor=actor)
    if result.status == Status.PAID:
        return _batch_complete(batch.pk, reference=result.reference, now=now, actor=actor)
    return _batch_await_manual(batch.pk, actor=actor)


def _locked_batch(batch_pk: int) -> PayoutBatch:
    return PayoutBatch.objects.select_for_update(of=("self",)).select_related("platform").get(pk=batch_pk)


def _outcome(batch: PayoutBatch, status: str | None = None, error: str | None = None) -> BatchOutcome:
    return BatchOutcome(
        batch_id=batch.public_id,
        platform=batch.platform.slug,
        amount=_money(batch.amount),
        payments=batch.payments.count(),
        status=status or batch.status,
        error=batch.error if error is None else error,
    )


@transaction.atomic
def _batch_complete(batch_pk: int, *, reference: str, now: datetime, actor) -> BatchOutcome:
    """The provider paid: batch and payments `paid`, audited, partner emailed. A batch another run
    already finished is left as it is."""
    batch = _locked_batch(batch_pk)
    if batch.status != Status.CREATED:
        return _outcome(batch)
    count = _mark_paid(batch, reference=reference, now=now, actor=actor)
    logger.info("payout batch %s paid (%s payments, %s %s)", batch.public_id, count, batch.amount, batch.currency)
    return _outcome(batch)


def _mark_paid(batch: PayoutBatch, *, reference: str, now: datetime, actor) -> int:
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
        amount=_money(batch.amount),
        currency=batch.currency,
        backend=batch.backend,
        payments=count,
        provider_reference=batch.provider_reference,
    )
    _notify_partner(batch, count=count, actor=actor)
    return count


@transaction.atomic
def _batch_await_manual(batch_pk: int, *, actor) -> BatchOutcome:
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
        amount=_money(batch.amount),
        currency=batch.currency,
    )
    return _outcome(batch)


@transaction.atomic
def _batch_fail(batch_pk: int, exc: PayoutRejected, *, actor) -> BatchOutcome:
    """Nothing was paid under this batch's key: fail it and release its payments for the next run."""
    batch = _locked_batch(batch_pk)
    if batch.status != Status.CREATED:
        return _outcome(batch)
    released = list(batch.payments.order_by("pk").values_list("pk", "lead__public_id"))
    payments = len(released)
    PartnerPayment.objects.filter(pk__in=[pk for pk, _ in released]).update(batch=None)
    batch.status = Status.FAILED
    batch.error = exc.message[:500]
    batch.save(update_fields=["status", "error"])
    _audit(
        "leads.payout_batch_failed",
        batch,
        actor,
        platform=batch.platform.slug,
        amount=_money(batch.amount),
        error_code=exc.code,
        released=[lead_id for _, lead_id in released],
    )
    logger.warning("payout batch %s failed (%s); %s payments released", batch.public_id, exc.code, payments)
    return BatchOutcome(batch.public_id, batch.platform.slug, _money(batch.amount), payments, batch.status, batch.error)


@transaction.atomic
def _batch_note_retry(batch_pk: int, exc: PayoutRetry, *, actor) -> BatchOutcome:
    """Outcome unknown or provider unavailable: keep the batch `created` (resumed next run), note why."""
    batch = _locked_batch(batch_pk)
    if batch.status != Status.CREATED:
        return _outcome(batch)
    batch.error = exc.message[:500]
    batch.save(update_fields=["error"])
    _audit("leads.payout_batch_retry_later", batch, actor, platform=batch.platform.slug, error_code=exc.code)
    logger.warning("payout batch %s: %s; stays created for the next run", batch.public_id, exc.code)
    return _outcome(batch)


# --- Staff: manual batches -------------------------------------------------------------------------


@transaction.atomic
def payout_batch_mark_paid(
    *, batch: PayoutBatch, reference: str, actor_type: str, actor_id: str, now: datetime | None = None
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
    _mark_paid(locked, reference=reference, now=now or utc_now(), actor=(actor_type, actor_id))
    return locked


@transaction.atomic
def payout_batch_cancel_manual(*, batch: PayoutBatch, reason: str, actor_type: str, actor_id: str) -> PayoutBatch:
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
    released = list(locked.payments.order_by("pk").values_list("pk", "lead__public_id"))
    PartnerPayment.objects.filter(pk__in=[pk for pk, _ in released]).update(batch=None)
    locked.status = Status.FAILED
    locked.error = f"cancelled by staff: {reason}"[:500]
    locked.save(update_fields=["status", "error"])
    _audit(
        "leads.payout_batch_cancelled",
        locked,
        (actor_type, actor_id),
        platform=locked.platform.slug,
        amount=_money(locked.amount),
        released=[lead_id for _, lead_id in released],
    )
    return locked


# --- Payment transitions ---------------------------------------------------------------------------

# action: (allowed from, to, past tense)
TRANSITIONS: dict[str, tuple[frozenset[str], str, str]] = {
    "dispute": (frozenset({PaymentStatus.PENDING}), PaymentStatus.DISPUTED, "disputed"),
    "cancel": (frozenset({PaymentStatus.PENDING, PaymentStatus.DISPUTED}), PaymentStatus.CANCELLED, "cancelled"),
    "reinstate": (frozenset({PaymentStatus.DISPUTED, PaymentStatus.CANCELLED}), PaymentStatus.PENDING, "reinstated"),
}


def _payment_transition(
    *, payment: PartnerPayment, action: str, reason: str, reason_required: bool, actor_type: str, actor_id: str
) -> PartnerPayment:
    allowed, target, past = TRANSITIONS[action]
    reason = reason.strip() if isinstance(reason, str) else ""
    if reason_required and not reason:
        raise PaymentTransitionError(f"Give a reason to {action} a payment.")
    if len(reason) > MAX_REASON:
        raise PaymentTransitionError(f"The reason must be at most {MAX_REASON} characters.")
    with transaction.atomic():
        locked = (
            PartnerPayment.objects.select_for_update(of=("self",))
            .select_related("lead", "batch", "platform")
            .get(pk=payment.pk)
        )
        label = f"Payment for {locked.lead.public_id}"
        if locked.batch_id is not None and locked.batch.status in IN_FLIGHT:
            raise PaymentTransitionError(
                f"{label} is in payout batch {locked.batch.public_id} "
                f"({locked.batch.get_status_display().lower()}) and cannot change until the batch is settled."
            )
        if locked.status == PaymentStatus.PAID:
            raise PaymentTransitionError(f"{label} is paid; a paid payment cannot be {past}.")
        if locked.status not in allowed:
            raise PaymentTransitionError(
                f"{label} is {locked.status}; only a {' or '.join(sorted(allowed))} payment can be {past}."
            )
        previous = locked.status
        locked.status = target
        locked.status_reason = reason
        locked.save(update_fields=["status", "status_reason", "updated_at"])
        # The reason stays on the payment row: staff free text is kept out of the audit metadata.
        audit_event_record(
            action=f"leads.payment_{past}",
            actor_type=actor_type,
            actor_id=str(actor_id),
            subject_type="leads.payment",
            subject_id=locked.lead.public_id,
            metadata={
                "lead": locked.lead.public_id,
                "platform": locked.platform.slug,
                "from": previous,
                "to": target,
                "amount": _money(locked.amount),
                "with_reason": bool(reason),
            },
        )
    return locked


def payment_dispute(*, payment: PartnerPayment, reason: str, actor_type: str, actor_id: str) -> PartnerPayment:
    """pending -> disputed: held out of payouts until reinstated or cancelled."""
    return _payment_transition(
        payment=payment, action="dispute", reason=reason, reason_required=True, actor_type=actor_type, actor_id=actor_id
    )


def payment_cancel(*, payment: PartnerPayment, reason: str, actor_type: str, actor_id: str) -> PartnerPayment:
    """pending|disputed -> cancelled: not owed (can be reinstated)."""
    return _payment_transition(
        payment=payment, action="cancel", reason=reason, reason_required=True, actor_type=actor_type, actor_id=actor_id
    )


def payment_reinstate(*, payment: PartnerPayment, reason: str = "", actor_type: str, actor_id: str) -> PartnerPayment:
    """disputed|cancelled -> pending: paid by the next run once due."""
    return _payment_transition(
        payment=payment,
        action="reinstate",
        reason=reason,
        reason_required=False,
        actor_type=actor_type,
        actor_id=actor_id,
    )


# --- Helpers ---------------------------------------------------------------------------------------


def _audit(action: str, batch: PayoutBatch, actor, **metadata) -> None:
    actor_type, actor_id = actor
    audit_event_record(
        action=action,
        actor_type=actor_type,
        actor_id=str(actor_id),
        subject_type="leads.payout_batch",
        subject_id=batch.public_id,
        metadata=metadata,
    )


def _notify_partner(batch: PayoutBatch, *, count: int, actor) -> bool:
    """Queue the "you have been paid" email to the platform's contact (inside the paying transaction,
    so it exists iff the batch is paid). No contact email: nothing is sent."""
    recipient = batch.platform.contact_email
    if not recipient:
        return False
    actor_type, actor_id = actor
    body = (
        f"Hello {batch.platform.name},\n\n"
        f"CareOS has paid out {_money(batch.amount)} {batch.currency} for {count} "
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
            subject=f"CareOS payout {batch.public_id}: {_money(batch.amount)} {batch.currency}",
            body=body,
            purpose="careos.payout_paid",
            actor_type=actor_type if actor_type in {"system", "user"} else "system",
            actor_id=str(actor_id),
        )
    except MessagingError as exc:  # a bad contact address must not undo a payout
        logger.warning("payout batch %s: partner email not queued (%s)", batch.public_id, type(exc).__name__)
        return False
    return True


__all__ = [
    "PaymentTransitionError",
    "PayoutBatchError",
    "PayoutReport",
    "due_payments",
    "payment_cancel",
    "payment_dispute",
    "payment_reinstate",
    "payout_batch_mark_paid",
    "payout_batches_resume",
    "payouts_process",
]
