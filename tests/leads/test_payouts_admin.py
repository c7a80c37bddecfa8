"""Staff side of payouts: payment actions through the services (errors as messages, never a 500),
"Process due payouts now" without a selection, batches with their payments, "Mark paid (manual)" and
the CSV export (formula-injection safe, audited)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.urls import reverse

from audit.models import AuditEvent
from leads.models import PartnerPayment, PartnerPlatform, PayoutBatch
from tests.leads.factories import make_payment, make_platform, payout_emails, run

pytestmark = pytest.mark.django_db

PAYMENTS = "admin:leads_partnerpayment_changelist"
BATCHES = "admin:leads_payoutbatch_changelist"


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser(username="admin", email="a@example.com", password="x" * 16)
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def platform():
    return make_platform("businessos", minimum_payout=Decimal("10.00"), contact_email="pay@bos.example").platform


def act(client, url_name: str, action: str, objects, **extra):
    data = {"action": action, "index": "0", ACTION_CHECKBOX_NAME: [str(o.pk) for o in objects], **extra}
    return client.post(reverse(url_name), data, follow=True)


def shown(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- Payments ------------------------------------------------------------------------------------


def test_payment_list_and_page_render(staff, platform):
    payment = make_payment(platform)
    run()
    other = make_payment(platform, status="disputed", status_reason="check")

    response = staff.get(reverse(PAYMENTS), {"status": "disputed"})
    assert response.status_code == 200
    body = response.content.decode()
    assert other.lead.public_id in body and payment.lead.public_id not in body

    response = staff.get(reverse(PAYMENTS))
    assert payment.lead.public_id in response.content.decode()
    assert PayoutBatch.objects.get().public_id in response.content.decode()
    page = staff.get(reverse("admin:leads_partnerpayment_change", args=[payment.pk]))
    assert page.status_code == 200 and payment.lead.public_id in page.content.decode()


def test_dispute_cancel_reinstate_through_the_actions(staff, platform):
    payment = make_payment(platform)

    response = act(staff, PAYMENTS, "dispute_payments", [payment], reason="duplicate")
    payment.refresh_from_db()
    assert response.status_code == 200 and "Disputed 1 payment(s)." in shown(response)
    assert (payment.status, payment.status_reason) == ("disputed", "duplicate")
    event = AuditEvent.objects.get(action="leads.payment_disputed")
    assert (event.actor_type, event.actor_id) == ("user", str(staff.user.pk))

    act(staff, PAYMENTS, "cancel_payments", [payment], reason="not a real lead")
    payment.refresh_from_db()
    assert payment.status == "cancelled"

    act(staff, PAYMENTS, "reinstate_payments", [payment], reason="")
    payment.refresh_from_db()
    assert payment.status == "pending"


def test_invalid_transitions_are_messages_not_errors(staff, platform):
    pending = make_payment(platform)
    paid = make_payment(platform, status="paid")

    response = act(staff, PAYMENTS, "dispute_payments", [pending], reason="")
    assert response.status_code == 200
    assert "Give a reason to dispute a payment." in shown(response)

    response = act(staff, PAYMENTS, "cancel_payments", [pending, paid], reason="wrong")
    assert response.status_code == 200
    messages = shown(response)
    assert "Cancelled 1 payment(s)." in messages
    assert any(paid.lead.public_id in m and "paid payment cannot be cancelled" in m for m in messages)
    paid.refresh_from_db()
    assert paid.status == "paid"


def test_process_due_payouts_runs_without_a_selection(staff, platform):
    make_payment(platform, amount="25.00")

    response = staff.post(reverse(PAYMENTS), {"action": "process_due_payouts", "index": "0"}, follow=True)

    assert response.status_code == 200
    batch = PayoutBatch.objects.get()
    assert batch.status == "awaiting_manual"
    assert any(f"({batch.public_id})" in m and "awaiting_manual" in m for m in shown(response))
    assert AuditEvent.objects.get(action="leads.payout_batch_created").actor_type == "user"

    response = staff.post(reverse(PAYMENTS), {"action": "process_due_payouts", "index": "0"}, follow=True)
    assert "No payments are due." in shown(response)
    assert PayoutBatch.objects.count() == 1


def test_view_only_staff_cannot_run_payment_actions(client, django_user_model, platform):
    user = django_user_model.objects.create_user(username="viewer", password="x" * 16, is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_partnerpayment"), Permission.objects.get(codename="view_payoutbatch")
    )
    client.force_login(user)
    payment = make_payment(platform, amount="25.00")

    response = client.post(reverse(PAYMENTS), {"action": "process_due_payouts", "index": "0"})
    act(client, PAYMENTS, "dispute_payments", [payment], reason="x")

    assert response.status_code in (200, 302)
    assert not PayoutBatch.objects.exists()
    payment.refresh_from_db()
    assert payment.status == "pending"


# --- Batches -------------------------------------------------------------------------------------


def test_batch_page_lists_its_payments_read_only(staff, platform):
    payments = [make_payment(platform) for _ in range(2)]
    run()
    batch = PayoutBatch.objects.get()

    listing = staff.get(reverse(BATCHES))
    page = staff.get(reverse("admin:leads_payoutbatch_change", args=[batch.pk]))

    assert listing.status_code == 200 and batch.public_id in listing.content.decode()
    body = page.content.decode()
    assert page.status_code == 200
    assert all(p.lead.public_id in body for p in payments)
    assert 'name="payments-0-amount"' not in body  # read-only inline


def test_mark_paid_manual_with_the_reference(staff, platform):
    payment = make_payment(platform, amount="25.00")
    run()
    batch = PayoutBatch.objects.get()

    response = act(staff, BATCHES, "mark_paid_manual", [batch], reference="")
    assert response.status_code == 200 and any("Enter the payment reference" in m for m in shown(response))
    batch.refresh_from_db()
    assert batch.status == "awaiting_manual"

    response = act(staff, BATCHES, "mark_paid_manual", [batch], reference="WIRE-778")

    batch.refresh_from_db()
    payment.refresh_from_db()
    assert f"{batch.public_id} marked paid (WIRE-778)." in shown(response)
    assert (batch.status, batch.provider_reference) == ("paid", "WIRE-778")
    assert payment.status == "paid"
    assert payout_emails().count() == 1
    assert AuditEvent.objects.get(action="leads.payout_batch_paid").actor_id == str(staff.user.pk)

    response = act(staff, BATCHES, "mark_paid_manual", [batch], reference="WIRE-779")
    assert response.status_code == 200
    assert any("only a batch awaiting manual payment" in m for m in shown(response))
    batch.refresh_from_db()
    assert batch.provider_reference == "WIRE-778"


def test_cancel_manual_batch_releases_its_payments(staff, platform):
    payment = make_payment(platform, amount="25.00")
    run()
    batch = PayoutBatch.objects.get()

    response = act(staff, BATCHES, "cancel_manual", [batch], reference="")
    assert any("Type the reason" in m for m in shown(response))
    # First a confirmation page: which payments return to what; nothing changed yet.
    page = act(staff, BATCHES, "cancel_manual", [batch], reference="wrong bank details")
    body = page.content.decode()
    assert page.templates[0].name == "admin/confirm_action.html"
    assert "1 payment(s) (25.00 USD) leave the batch and return to pending" in body
    assert "wrong bank details" in body
    assert PayoutBatch.objects.get().status == "awaiting_manual"
    assert not AuditEvent.objects.filter(action="leads.payout_batch_cancelled").exists()
    # Its "yes" posts to the cancel view, the reason in the query string.
    form_action = page.context["form_action"]
    assert form_action.startswith(reverse("admin:leads_payoutbatch_cancel"))
    response = staff.post(form_action, {"post": "yes", ACTION_CHECKBOX_NAME: [str(batch.pk)]}, follow=True)

    batch.refresh_from_db()
    payment.refresh_from_db()
    assert f"{batch.public_id} cancelled; its payments are pending again." in shown(response)
    assert (batch.status, payment.status, payment.batch_id) == ("failed", "pending", None)
    assert AuditEvent.objects.get(action="leads.payout_batch_cancelled").actor_id == str(staff.user.pk)
    assert "cancelled by staff: wrong bank details" in batch.error


def test_cancel_view_needs_the_manage_permission(client, django_user_model, platform):
    make_payment(platform, amount="25.00")
    run()
    batch = PayoutBatch.objects.get()
    viewer = django_user_model.objects.create_user(username="viewer", password="x" * 16, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_payoutbatch"))
    client.force_login(viewer)
    url = f"{reverse('admin:leads_payoutbatch_cancel')}?reference=nope"
    response = client.post(url, {"post": "yes", ACTION_CHECKBOX_NAME: [str(batch.pk)]})
    assert response.status_code == 403
    assert PayoutBatch.objects.get().status == "awaiting_manual"


def test_export_csv_streams_the_batch_payments_formula_safe_and_is_audited(staff, platform):
    payments = [make_payment(platform, amount=a) for a in ("12.00", "13.50")]
    run()
    batch = PayoutBatch.objects.get()
    # A hostile value in a text column must come out inert.
    PartnerPayment.objects.filter(pk=payments[1].pk).update(currency="=A1")
    untouched = make_payment(platform, amount="99.00")  # not in the batch

    response = act(staff, BATCHES, "export_csv", [batch])

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert f'filename="{batch.public_id}.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [
        "batch",
        "platform",
        "payee",
        "lead_id",
        "amount",
        "currency",
        "status",
        "batch_status",
        "reference",
        "created",
        "due",
        "paid",
    ]
    assert [row[:9] for row in rows[1:]] == [
        [
            batch.public_id,
            "businessos",
            platform.name,
            payments[0].lead.public_id,
            "12.00",
            "USD",
            "pending",
            "awaiting_manual",
            "",
        ],
        [
            batch.public_id,
            "businessos",
            platform.name,
            payments[1].lead.public_id,
            "13.50",
            "'=A1",
            "pending",
            "awaiting_manual",
            "",
        ],
    ]
    assert all(row[9].endswith("Z") and row[10].endswith("Z") and row[11] == "" for row in rows[1:])
    assert untouched.lead.public_id not in str(rows)
    event = AuditEvent.objects.get(action="leads.payout_export")
    assert event.metadata == {"batches": [batch.public_id]} and event.actor_id == str(staff.user.pk)


def test_export_csv_names_the_stripe_payee_and_keeps_a_hostile_name_inert(staff):
    platform = make_platform("stripeco", name="=HYPERLINK(1)", minimum_payout=Decimal("1.00")).platform
    make_payment(platform, amount="12.00")
    run()
    batch = PayoutBatch.objects.get()
    # As a Stripe batch would be once paid (no Stripe server here).
    PartnerPlatform.objects.filter(pk=platform.pk).update(stripe_account_id="acct_123abc")
    PayoutBatch.objects.filter(pk=batch.pk).update(backend="stripe", provider_reference="tr_42")

    response = act(staff, BATCHES, "export_csv", [batch])

    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[1][1:3] == ["stripeco", "'=HYPERLINK(1) (acct_123abc)"]
    assert rows[1][8] == "tr_42"
