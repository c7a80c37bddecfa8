"""Payment status transitions, by staff (each audited, invalid ones raise `PaymentTransitionError`):

pending -> disputed (`payment_dispute`, reason), disputed|cancelled -> pending (`payment_reinstate`),
pending|disputed -> cancelled (`payment_cancel`, reason). `paid` is final; a payment in a batch that is
in flight (created / awaiting_manual) cannot change.
"""

from __future__ import annotations

from django.db import transaction

from audit.services import audit_event_record
from core.actors import Actor
from core.domain import Invalid
from leads.models import PartnerPayment
from leads.services.payouts.batches import IN_FLIGHT
from leads.services.payouts.reports import money

PaymentStatus = PartnerPayment.Status
MAX_REASON = 300


class PaymentTransitionError(Invalid):
    """A payment status change that is not allowed; the message is for staff."""


# action: (allowed from, to, past tense)
TRANSITIONS: dict[str, tuple[frozenset[str], str, str]] = {
    "dispute": (frozenset({PaymentStatus.PENDING}), PaymentStatus.DISPUTED, "disputed"),
    "cancel": (frozenset({PaymentStatus.PENDING, PaymentStatus.DISPUTED}), PaymentStatus.CANCELLED, "cancelled"),
    "reinstate": (frozenset({PaymentStatus.DISPUTED, PaymentStatus.CANCELLED}), PaymentStatus.PENDING, "reinstated"),
}


@transaction.atomic
def _payment_transition(
    *, payment: PartnerPayment, action: str, reason: str, reason_required: bool, actor: Actor
) -> PartnerPayment:
    allowed, target, past = TRANSITIONS[action]
    reason = reason.strip() if isinstance(reason, str) else ""
    if reason_required and not reason:
        raise PaymentTransitionError(f"Give a reason to {action} a payment.")
    if len(reason) > MAX_REASON:
        raise PaymentTransitionError(f"The reason must be at most {MAX_REASON} characters.")
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
        actor=actor,
        subject_type="leads.payment",
        subject_id=locked.lead.public_id,
        metadata={
            "lead": locked.lead.public_id,
            "platform": locked.platform.slug,
            "from": previous,
            "to": target,
            "amount": money(locked.amount),
            "with_reason": bool(reason),
        },
    )
    return locked


def payment_dispute(*, payment: PartnerPayment, reason: str, actor: Actor) -> PartnerPayment:
    """pending -> disputed: held out of payouts until reinstated or cancelled."""
    return _payment_transition(payment=payment, action="dispute", reason=reason, reason_required=True, actor=actor)


def payment_cancel(*, payment: PartnerPayment, reason: str, actor: Actor) -> PartnerPayment:
    """pending|disputed -> cancelled: not owed (can be reinstated)."""
    return _payment_transition(payment=payment, action="cancel", reason=reason, reason_required=True, actor=actor)


def payment_reinstate(*, payment: PartnerPayment, reason: str = "", actor: Actor) -> PartnerPayment:
    """disputed|cancelled -> pending: paid by the next run once due."""
    return _payment_transition(payment=payment, action="reinstate", reason=reason, reason_required=False, actor=actor)
