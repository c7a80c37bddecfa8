"""Payment status transitions: the full table (every action from every status), reasons, audit, and
payments in a batch in flight."""

from __future__ import annotations

from decimal import Decimal

import pytest

from audit.models import AuditEvent
from leads.models import PayoutBatch
from leads.services import payouts
from tests.leads.factories import ACTOR, make_payment, make_platform, run

pytestmark = pytest.mark.django_db

SERVICES = {
    "dispute": payouts.payment_dispute,
    "cancel": payouts.payment_cancel,
    "reinstate": payouts.payment_reinstate,
}
# (from status, action) -> resulting status, or None when refused.
TABLE = {
    ("pending", "dispute"): "disputed",
    ("pending", "cancel"): "cancelled",
    ("pending", "reinstate"): None,
    ("disputed", "dispute"): None,
    ("disputed", "cancel"): "cancelled",
    ("disputed", "reinstate"): "pending",
    ("cancelled", "dispute"): None,
    ("cancelled", "cancel"): None,
    ("cancelled", "reinstate"): "pending",
    ("paid", "dispute"): None,
    ("paid", "cancel"): None,
    ("paid", "reinstate"): None,
}


@pytest.fixture
def platform():
    return make_platform("businessos", minimum_payout=Decimal("10.00")).platform


@pytest.mark.parametrize(("start", "action"), sorted(TABLE))
def test_transition_table(platform, start, action):
    payment = make_payment(platform, status=start)
    expected = TABLE[(start, action)]
    events = AuditEvent.objects.count()

    if expected is None:
        with pytest.raises(payouts.PaymentTransitionError) as caught:
            SERVICES[action](payment=payment, reason="staff reason", actor=ACTOR)
        assert payment.lead.public_id in str(caught.value)
        assert ("paid payment cannot be" in str(caught.value)) == (start == "paid")
        payment.refresh_from_db()
        assert payment.status == start
        assert AuditEvent.objects.count() == events
        return

    result = SERVICES[action](payment=payment, reason="duplicate lead", actor=ACTOR)

    payment.refresh_from_db()
    assert result.status == payment.status == expected
    assert payment.status_reason == "duplicate lead"
    past = {"dispute": "disputed", "cancel": "cancelled", "reinstate": "reinstated"}[action]
    event = AuditEvent.objects.get(action=f"leads.payment_{past}")
    assert (event.subject_type, event.subject_id) == ("leads.payment", payment.lead.public_id)
    assert event.metadata["from"] == start and event.metadata["to"] == expected
    assert "duplicate lead" not in str(event.metadata)  # staff free text stays on the row


@pytest.mark.parametrize("action", ["dispute", "cancel"])
@pytest.mark.parametrize("reason", ["", "   ", None, "x" * 301])
def test_dispute_and_cancel_need_a_short_reason(platform, action, reason):
    payment = make_payment(platform)

    with pytest.raises(payouts.PaymentTransitionError, match="reason"):
        SERVICES[action](payment=payment, reason=reason, actor=ACTOR)

    payment.refresh_from_db()
    assert payment.status == "pending"


def test_reinstate_needs_no_reason_and_the_payment_is_paid_next_run(platform):
    payment = make_payment(platform, amount="20.00")
    payouts.payment_dispute(payment=payment, reason="checking consent", actor=ACTOR)
    assert run().platforms[0].status == "nothing_due"  # a disputed payment is not paid

    payouts.payment_reinstate(payment=payment, actor=ACTOR)
    run()

    payment.refresh_from_db()
    assert payment.status == "pending" and payment.status_reason == ""
    assert payment.batch.status == "awaiting_manual"


@pytest.mark.parametrize("batch_status", ["created", "awaiting_manual"])
@pytest.mark.parametrize("action", ["dispute", "cancel"])
def test_a_payment_in_a_batch_in_flight_cannot_change(platform, batch_status, action):
    payment = make_payment(platform, amount="20.00")
    run()
    batch = PayoutBatch.objects.get()
    PayoutBatch.objects.filter(pk=batch.pk).update(status=batch_status)

    with pytest.raises(payouts.PaymentTransitionError, match=f"is in payout batch {batch.public_id}"):
        SERVICES[action](payment=payment, reason="too late", actor=ACTOR)

    payment.refresh_from_db()
    assert (payment.status, payment.batch_id) == ("pending", batch.pk)


def test_payments_of_a_paid_batch_are_final(platform):
    payment = make_payment(platform, amount="20.00")
    run()
    payouts.payout_batch_mark_paid(batch=PayoutBatch.objects.get(), reference="REF", actor=ACTOR)

    for service in SERVICES.values():
        with pytest.raises(payouts.PaymentTransitionError, match="paid payment cannot be"):
            service(payment=payment, reason="after the fact", actor=ACTOR)

    payment.refresh_from_db()
    assert payment.status == "paid"
