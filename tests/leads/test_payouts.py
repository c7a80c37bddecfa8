"""Partner payouts: the run (threshold, due date, manual flow, email, dry run), the command, the beat task,
and concurrent runs on PostgreSQL. Stripe (and the crash test) is in test_payout_stripe.py.

Shared helpers (`make_payment`, `run`, `NOW`, `snapshot`...) live in tests/leads/factories.py."""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from audit.models import AuditEvent
from core.registry import Crontab
from leads import tasks
from leads.models import PartnerPayment, PayoutBatch
from leads.schedules import PERIODIC_TASKS
from leads.services import payouts
from leads.services.payouts import batches
from tests.leads.factories import (
    ACTOR,
    NOW,
    PARTNER_EMAIL,
    make_payment,
    make_platform,
    payout_emails,
    platform_report,
    run,
    snapshot,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def platform():
    return make_platform("businessos", minimum_payout=Decimal("50.00"), contact_email=PARTNER_EMAIL).platform


# --- Threshold and due date ----------------------------------------------------------------------


def test_under_the_minimum_is_skipped_and_nothing_is_written(platform):
    for _ in range(3):
        make_payment(platform, amount="15.00")  # 45.00 < 50.00
    before = snapshot()

    report = run()

    item = platform_report(report, "businessos")
    assert (item.status, item.due_count, item.due_amount, item.batch_id) == ("below_minimum", 3, "45.00", "")
    assert snapshot() == before


def test_exactly_the_minimum_is_paid(platform):
    payments = [make_payment(platform, amount="25.00") for _ in range(2)]  # 50.00 == minimum

    report = run()

    item = platform_report(report, "businessos")
    assert (item.status, item.due_count, item.due_amount) == ("awaiting_manual", 2, "50.00")
    batch = PayoutBatch.objects.get()
    assert batch.amount == Decimal("50.00") and batch.public_id == item.batch_id
    assert {p.batch_id for p in PartnerPayment.objects.filter(pk__in=[p.pk for p in payments])} == {batch.pk}


def test_due_date_boundary_includes_now_and_excludes_the_next_microsecond(platform):
    on_time = make_payment(platform, amount="60.00", due_at=NOW)
    late = make_payment(platform, amount="60.00", due_at=NOW + timedelta(microseconds=1))

    run()

    on_time.refresh_from_db()
    late.refresh_from_db()
    batch = PayoutBatch.objects.get()
    assert on_time.batch_id == batch.pk and batch.amount == Decimal("60.00")
    assert late.batch_id is None and late.status == "pending"

    # A month later the late one is due and paid in its own batch.
    run(now=NOW + timedelta(days=31))
    late.refresh_from_db()
    assert late.batch_id not in (None, batch.pk)


def test_only_pending_unbatched_payments_of_the_platform_count(platform):
    other = make_platform("otherpartner", minimum_payout=Decimal("1.00")).platform
    make_payment(platform, amount="40.00")
    make_payment(platform, amount="40.00", status="disputed")
    make_payment(platform, amount="40.00", status="cancelled")
    make_payment(platform, amount="40.00", status="paid")
    make_payment(other, amount="40.00")

    report = run()

    assert platform_report(report, "businessos").status == "below_minimum"  # only 40.00 counts
    assert platform_report(report, "otherpartner").status == "awaiting_manual"
    assert PayoutBatch.objects.get().platform == other


def test_a_suspended_platform_is_held(platform):
    make_payment(platform, amount="80.00")
    platform.status = "suspended"
    platform.save()

    report = run()

    assert platform_report(report, "businessos").status == "held"
    assert not PayoutBatch.objects.exists()


# --- Manual flow ---------------------------------------------------------------------------------


def test_manual_flow_awaits_staff_then_mark_paid_pays_and_emails(platform):
    payments = [make_payment(platform, amount="30.00") for _ in range(2)]

    report = run()

    batch = PayoutBatch.objects.get()
    assert (batch.status, batch.backend, batch.amount) == ("awaiting_manual", "manual", Decimal("60.00"))
    assert batch.idempotency_key == f"careos-payout-{batch.public_id}"
    assert platform_report(report, "businessos").status == "awaiting_manual"
    assert set(PartnerPayment.objects.values_list("status", "batch_id")) == {("pending", batch.pk)}
    assert not payout_emails().exists()  # nothing is paid yet
    actions = list(AuditEvent.objects.filter(subject_id=batch.public_id).values_list("action", flat=True))
    assert sorted(actions) == ["leads.payout_batch_awaiting_manual", "leads.payout_batch_created"]

    # A second run changes nothing: the payments are in the batch.
    before = snapshot()
    again = run()
    assert platform_report(again, "businessos").status == "nothing_due" and snapshot() == before

    paid_at = NOW + timedelta(days=2)
    payouts.payout_batch_mark_paid(batch=batch, reference="  BANK-REF-0042 ", now=paid_at, actor=ACTOR)

    batch.refresh_from_db()
    assert (batch.status, batch.provider_reference, batch.paid_at) == ("paid", "BANK-REF-0042", paid_at)
    for payment in payments:
        payment.refresh_from_db()
        assert (payment.status, payment.paid_at, payment.batch_id) == ("paid", paid_at, batch.pk)
    event = AuditEvent.objects.get(action="leads.payout_batch_paid")
    assert event.subject_id == batch.public_id and event.metadata["payments"] == 2
    assert event.metadata["provider_reference"] == "BANK-REF-0042"
    [email] = payout_emails()
    assert email.channel == "email" and email.recipient == PARTNER_EMAIL
    assert batch.public_id in email.subject and "60.00 USD" in email.subject
    assert "BANK-REF-0042" in email.body and "2 referred leads" in email.body


@pytest.mark.parametrize("reference", ["", "   ", "x" * 101])
def test_mark_paid_needs_a_reference(platform, reference):
    make_payment(platform, amount="60.00")
    run()
    batch = PayoutBatch.objects.get()

    with pytest.raises(payouts.PayoutBatchError, match="reference"):
        payouts.payout_batch_mark_paid(batch=batch, reference=reference, actor=ACTOR)

    batch.refresh_from_db()
    assert batch.status == "awaiting_manual"


def test_mark_paid_twice_is_refused_and_pays_once(platform):
    make_payment(platform, amount="60.00")
    run()
    batch = PayoutBatch.objects.get()
    payouts.payout_batch_mark_paid(batch=batch, reference="REF-1", actor=ACTOR)

    with pytest.raises(payouts.PayoutBatchError, match="only a batch awaiting manual payment"):
        payouts.payout_batch_mark_paid(batch=batch, reference="REF-2", actor=ACTOR)

    batch.refresh_from_db()
    assert batch.provider_reference == "REF-1"
    assert AuditEvent.objects.filter(action="leads.payout_batch_paid").count() == 1
    assert payout_emails().count() == 1


def test_no_contact_email_pays_without_an_email():
    platform = make_platform("quietpartner", minimum_payout=Decimal("10.00")).platform
    make_payment(platform, amount="20.00")
    run()

    payouts.payout_batch_mark_paid(batch=PayoutBatch.objects.get(), reference="REF", actor=ACTOR)

    assert PayoutBatch.objects.get().status == "paid"
    assert not payout_emails().exists()


def test_a_manual_batch_left_created_by_a_crash_is_resumed(platform, monkeypatch):
    make_payment(platform, amount="60.00")

    def crash(*args, **kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(batches, "_batch_await_manual", crash)
    report = run()
    assert platform_report(report, "businessos").status == "error"
    assert PayoutBatch.objects.get().status == "created"
    monkeypatch.undo()

    report = run()

    batch = PayoutBatch.objects.get()
    assert batch.status == "awaiting_manual"
    assert [(o.batch_id, o.status) for o in report.resumed] == [(batch.public_id, "awaiting_manual")]
    assert platform_report(report, "businessos").status == "nothing_due"


# --- Dry run -------------------------------------------------------------------------------------


def test_dry_run_writes_nothing_and_reports_what_would_happen(platform):
    small = make_platform("smallpartner", minimum_payout=Decimal("100.00")).platform
    make_payment(platform, amount="60.00")
    make_payment(small, amount="60.00")
    # A batch a crash left `created` (resumed by a real run, only listed by a dry run).
    stuck = PayoutBatch(platform=platform, amount=Decimal("5.00"), backend="manual")
    stuck.idempotency_key = f"careos-payout-{stuck.public_id}"
    stuck.save()
    before = snapshot()

    report = run(dry_run=True)

    assert snapshot() == before
    assert report.dry_run is True
    assert [(o.batch_id, o.status) for o in report.resumed] == [(stuck.public_id, "would_resume")]
    assert platform_report(report, "businessos").status == "would_pay"
    assert platform_report(report, "smallpartner").status == "below_minimum"


# --- Command and task ----------------------------------------------------------------------------


def test_command_dry_run_json_then_real_run(platform):
    make_payment(platform, amount="60.00")
    before = snapshot()
    out = io.StringIO()

    call_command("process_partner_payments", "--dry-run", "--json", stdout=out)

    data = json.loads(out.getvalue())
    assert data["dry_run"] is True
    assert data["platforms"] == [
        {
            "platform": "businessos",
            "backend": "manual",
            "minimum_payout": "50.00",
            "due_count": 1,
            "due_amount": "60.00",
            "status": "would_pay",
            "batch_id": "",
            "error": "",
        }
    ]
    assert snapshot() == before

    out = io.StringIO()
    call_command("process_partner_payments", stdout=out)
    batch = PayoutBatch.objects.get()
    assert f"businessos [manual, minimum 50.00]: 1 due payments, 60.00 USD -> awaiting_manual ({batch.public_id})" in (
        out.getvalue()
    )


def test_task_runs_a_payout_and_is_idempotent(platform):
    make_payment(platform, amount="60.00", due_at=datetime(2000, 1, 1, tzinfo=UTC))

    first = tasks.process_partner_payments()
    second = tasks.process_partner_payments()

    batch = PayoutBatch.objects.get()
    assert [p["status"] for p in first["platforms"]] == ["awaiting_manual"]
    assert first["platforms"][0]["batch_id"] == batch.public_id
    assert [p["status"] for p in second["platforms"]] == ["nothing_due"]
    assert tasks.resume_payout_batches() == 0


def test_monthly_schedule_is_declared():
    [entry] = [e for e in PERIODIC_TASKS if e.task == "leads.tasks.process_partner_payments"]
    assert entry.name == "leads: monthly partner payouts"
    assert isinstance(entry.when, Crontab)
    assert (entry.when.day_of_month, entry.when.month_of_year, entry.when.day_of_week) == ("1", "*", "*")
    assert entry.when.hour.isdigit() and entry.when.minute.isdigit()
    assert tasks.process_partner_payments.name == entry.task
    [resume] = [e for e in PERIODIC_TASKS if e.task == "leads.tasks.resume_payout_batches"]
    assert resume.when.day_of_month == "*"


# --- Concurrency (PostgreSQL) --------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_never_attach_a_payment_twice(require_postgres, monkeypatch):
    platforms = [
        make_platform(slug, minimum_payout=Decimal("10.00")).platform for slug in ("businessos", "otherpartner")
    ]
    payments = [make_payment(p, amount="12.50") for p in platforms for _ in range(5)]
    # Hold the claiming transaction open a while so the runs overlap on the locked rows.
    original_audit = batches._audit
    created_in = []

    def slow_audit(action, batch, actor, **metadata):
        original_audit(action, batch, actor, **metadata)
        if action == "leads.payout_batch_created":
            created_in.append(threading.get_ident())
            threading.Event().wait(0.4)

    monkeypatch.setattr(batches, "_audit", slow_audit)
    workers = 4
    barrier = threading.Barrier(workers)
    reports, errors = [], []

    def worker():
        try:
            barrier.wait()
            reports.append(payouts.payouts_process(now=NOW, actor=ACTOR))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors, errors
    assert len(reports) == workers
    made = list(PayoutBatch.objects.all())
    assert len(made) == 2 and len(created_in) == 2  # one batch per platform, however many runs
    for batch in made:
        attached = PartnerPayment.objects.filter(batch=batch)
        assert attached.count() == 5
        assert sum(p.amount for p in attached) == batch.amount == Decimal("62.50")
        assert batch.status == "awaiting_manual"
    assert PartnerPayment.objects.filter(pk__in=[p.pk for p in payments], batch__isnull=True).count() == 0
    statuses = sorted(platform_report(r, "businessos").status for r in reports)
    assert statuses.count("awaiting_manual") == 1
    assert set(statuses) <= {"awaiting_manual", "claimed_elsewhere", "nothing_due"}


def test_staff_cancel_a_manual_batch_releases_its_payments_for_the_next_run(platform):
    payments = [make_payment(platform, amount="30.00") for _ in range(2)]
    run()
    batch = PayoutBatch.objects.get()

    with pytest.raises(payouts.PayoutBatchError):
        payouts.payout_batch_cancel_manual(batch=batch, reason="  ", actor=ACTOR)
    payouts.payout_batch_cancel_manual(batch=batch, reason="partner changed bank", actor=ACTOR)

    batch.refresh_from_db()
    assert (batch.status, batch.paid_at) == ("failed", None)
    assert batch.error == "cancelled by staff: partner changed bank"
    assert set(PartnerPayment.objects.values_list("status", "batch_id")) == {("pending", None)}
    event = AuditEvent.objects.get(action="leads.payout_batch_cancelled")
    assert sorted(event.metadata["released"]) == sorted(p.lead.public_id for p in payments)
    assert "bank" not in str(event.metadata)  # the staff's free text stays on the batch
    with pytest.raises(payouts.PayoutBatchError):  # only a batch awaiting manual payment
        payouts.payout_batch_cancel_manual(batch=batch, reason="again", actor=ACTOR)

    run()
    new_batch = PayoutBatch.objects.exclude(pk=batch.pk).get()
    assert new_batch.status == "awaiting_manual" and new_batch.payments.count() == 2
