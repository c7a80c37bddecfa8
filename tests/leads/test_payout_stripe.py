"""Stripe payouts against a Stripe-like server on 127.0.0.1 that implements idempotency keys: the flow,
a crash between the provider call and the database update, 4xx / 5xx / timeouts / conflicts, and the
configuration failures."""

from __future__ import annotations

import json
import threading
import uuid
from decimal import Decimal
from urllib.parse import parse_qs

import pytest

from audit.models import AuditEvent
from leads.clients import StripeClient, StripeTransientError
from leads.models import PartnerPayment, PayoutBatch
from leads.services.payouts import batches
from tests.leads.factories import NOW, make_payment, make_platform, payout_emails, platform_report, run, snapshot
from tests.servers import LocalServer, Recorded, Reply

pytestmark = pytest.mark.django_db

API_KEY = "sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc"
ACCOUNT = "acct_1BusinessOSabc"
EMAIL = "finance@businessos.example"


def _json(status: int, body: dict, headers: dict | None = None) -> Reply:
    return Reply(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body))


def stripe_error(status: int, error_type: str, code: str = "") -> Reply:
    return _json(status, {"error": {"type": error_type, "code": code, "message": "No such destination: 'acct_x'"}})


class FakeStripe:
    """POST /v1/transfers like Stripe: bearer auth, form fields, and idempotency keys (the same key with
    the same parameters replays the first answer and creates nothing; with other parameters: 400
    idempotency_error). `script` holds replies given first, in order, without executing anything;
    `answer_delay` executes the transfer and then answers late (the answer is lost to a short timeout)."""

    def __init__(self):
        self.script: list[Reply] = []
        self.problems: list[str] = []
        self.transfers: list[dict] = []
        self.answer_delay = 0.0
        self._keys: dict[str, tuple[dict, dict]] = {}
        self._lock = threading.Lock()
        self.server = LocalServer(self._handle)

    @property
    def requests(self) -> list[Recorded]:
        return self.server.requests

    def form(self, index: int = -1) -> dict[str, str]:
        parsed = parse_qs(self.requests[index].body.decode(), keep_blank_values=True, strict_parsing=True)
        return {key: values[0] for key, values in parsed.items()}

    def _handle(self, request: Recorded) -> Reply:
        if request.method != "POST" or request.path != "/v1/transfers":
            self.problems.append(f"unexpected {request.method} {request.path}")
            return stripe_error(404, "invalid_request_error", "resource_missing")
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            self.problems.append("bad auth")
            return stripe_error(401, "invalid_request_error")
        if request.headers.get("Content-Type", "").split(";")[0] != "application/x-www-form-urlencoded":
            self.problems.append("not form-encoded")
            return stripe_error(400, "invalid_request_error")
        form = {k: v[0] for k, v in parse_qs(request.body.decode(), keep_blank_values=True).items()}
        missing = {"amount", "currency", "destination"} - set(form)
        key = request.headers.get("Idempotency-Key", "")
        if missing or not key or not form["amount"].isdigit():
            self.problems.append(f"bad request {sorted(missing)} key={bool(key)}")
            return stripe_error(400, "invalid_request_error", "parameter_missing")
        if self.script:
            return self.script.pop(0)
        with self._lock:
            if key in self._keys:
                params, body = self._keys[key]
                if params != form:
                    return stripe_error(400, "idempotency_error")
                return _json(200, body, {"Idempotent-Replayed": "true"})
            body = {
                "id": "tr_" + uuid.uuid4().hex[:24],
                "object": "transfer",
                "amount": int(form["amount"]),
                "currency": form["currency"],
                "destination": form["destination"],
                "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
            }
            self._keys[key] = (form, body)
            self.transfers.append(body)
        return Reply(200, {"Content-Type": "application/json"}, json.dumps(body), delay=self.answer_delay)


@pytest.fixture
def stripe(settings):
    fake = FakeStripe()
    fake.server.start()
    settings.STRIPE_API_KEY = API_KEY
    settings.STRIPE_API_BASE = fake.server.base_url
    yield fake
    fake.server.stop()
    assert not fake.server.errors, fake.server.errors
    assert not fake.problems, fake.problems


@pytest.fixture
def platform():
    return make_platform(
        "businessos",
        minimum_payout=Decimal("50.00"),
        payout_backend="stripe",
        stripe_account_id=ACCOUNT,
        contact_email=EMAIL,
    ).platform


def test_stripe_flow_pays_marks_paid_and_emails(stripe, platform):
    payments = [make_payment(platform, amount=amount) for amount in ("15.00", "20.50", "19.99")]

    report = run()

    batch = PayoutBatch.objects.get()
    item = platform_report(report, "businessos")
    assert (item.status, item.batch_id, item.due_amount) == ("paid", batch.public_id, "55.49")
    [request] = stripe.requests
    assert request.headers["Idempotency-Key"] == batch.idempotency_key == f"careos-payout-{batch.public_id}"
    assert stripe.form() == {
        "amount": "5549",
        "currency": "usd",
        "destination": ACCOUNT,
        "metadata[batch]": batch.public_id,
    }
    [transfer] = stripe.transfers
    assert (batch.status, batch.backend, batch.provider_reference) == ("paid", "stripe", transfer["id"])
    assert batch.paid_at == NOW and batch.error == ""
    for payment in payments:
        payment.refresh_from_db()
        assert (payment.status, payment.paid_at, payment.batch_id) == ("paid", NOW, batch.pk)
    [email] = payout_emails()
    assert email.recipient == EMAIL and transfer["id"] in email.body and "55.49 USD" in email.subject
    assert AuditEvent.objects.filter(action="leads.payout_batch_paid", subject_id=batch.public_id).count() == 1

    # Nothing left: a second run sends nothing.
    assert platform_report(run(), "businessos").status == "nothing_due"
    assert len(stripe.requests) == 1


def test_crash_between_the_transfer_and_the_database_update_then_rerun_pays_once(stripe, platform, monkeypatch):
    payments = [make_payment(platform, amount="30.00") for _ in range(3)]
    calls = []

    def crash(batch_pk, *, reference, now, actor):
        calls.append(reference)  # the backend has answered with the transfer...
        raise RuntimeError("worker killed before the database update")  # ...and the process dies

    monkeypatch.setattr(batches, "_batch_complete", crash)
    report = run()

    batch = PayoutBatch.objects.get()
    assert len(stripe.transfers) == 1 and calls == [stripe.transfers[0]["id"]]
    assert platform_report(report, "businessos").status == "error"
    assert batch.status == "created" and batch.provider_reference == ""
    assert set(PartnerPayment.objects.values_list("status", "batch_id")) == {("pending", batch.pk)}
    monkeypatch.undo()

    report = run(now=NOW.replace(day=2))

    assert len(stripe.requests) == 2
    assert stripe.requests[1].headers["Idempotency-Key"] == batch.idempotency_key
    assert len(stripe.transfers) == 1  # the same transfer came back: paid once
    batch.refresh_from_db()
    assert (batch.status, batch.provider_reference) == ("paid", stripe.transfers[0]["id"])
    assert [(o.batch_id, o.status, o.payments) for o in report.resumed] == [(batch.public_id, "paid", 3)]
    assert PayoutBatch.objects.count() == 1
    for payment in payments:
        payment.refresh_from_db()
        assert (payment.status, payment.batch_id) == ("paid", batch.pk)
    assert AuditEvent.objects.filter(action="leads.payout_batch_paid").count() == 1
    assert payout_emails().count() == 1

    # A third run has nothing to do and calls nobody.
    before = snapshot()
    run(now=NOW.replace(day=3))
    assert len(stripe.requests) == 2
    assert snapshot()["payments"] == before["payments"] and snapshot()["batches"] == before["batches"]


def test_answer_lost_to_a_timeout_stays_created_then_the_same_transfer_completes(stripe, platform, settings):
    settings.OUTBOUND_TIMEOUT_SECONDS = 0.3
    make_payment(platform, amount="60.00")
    stripe.answer_delay = 1.5  # Stripe executes the transfer; its answer arrives too late

    report = run()

    batch = PayoutBatch.objects.get()
    assert platform_report(report, "businessos").status == "created"
    assert batch.status == "created" and "stripe_timeout" in batch.error
    assert len(stripe.transfers) == 1
    stripe.answer_delay = 0.0

    run()

    batch.refresh_from_db()
    assert batch.status == "paid" and batch.provider_reference == stripe.transfers[0]["id"]
    assert len(stripe.transfers) == 1 and len(stripe.requests) == 2


def test_4xx_fails_the_batch_and_releases_its_payments(stripe, platform):
    payments = [make_payment(platform, amount="30.00") for _ in range(2)]
    stripe.script = [stripe_error(400, "invalid_request_error", "resource_missing")]

    report = run()

    failed = PayoutBatch.objects.get()
    assert platform_report(report, "businessos").status == "failed"
    assert failed.status == "failed" and "stripe_http_400_resource_missing" in failed.error
    assert set(PartnerPayment.objects.values_list("status", "batch_id")) == {("pending", None)}
    event = AuditEvent.objects.get(action="leads.payout_batch_failed")
    assert event.subject_id == failed.public_id and event.metadata["error_code"] == "stripe_http_400_resource_missing"
    assert sorted(event.metadata["released"]) == sorted(p.lead.public_id for p in payments)
    assert not stripe.transfers and not payout_emails().exists()

    # The next run pays them in a new batch with a new idempotency key.
    report = run()

    paid = PayoutBatch.objects.exclude(pk=failed.pk).get()
    assert paid.status == "paid" and paid.idempotency_key != failed.idempotency_key
    assert stripe.requests[-1].headers["Idempotency-Key"] == paid.idempotency_key
    assert set(PartnerPayment.objects.values_list("status", "batch_id")) == {("paid", paid.pk)}
    assert len(stripe.transfers) == 1
    failed.refresh_from_db()
    assert failed.status == "failed"  # never resumed


@pytest.mark.parametrize(
    "reply,code",
    [
        (stripe_error(500, "api_error"), "stripe_http_500_api_error"),
        (stripe_error(503, "api_error"), "stripe_http_503_api_error"),
        (stripe_error(429, "rate_limit_error"), "stripe_http_429_rate_limit_error"),
        (stripe_error(409, "idempotency_error", "idempotency_key_in_use"), "stripe_http_409_idempotency_key_in_use"),
        (Reply(200, {"Content-Type": "application/json"}, b"<html>"), "stripe_bad_response"),
    ],
)
def test_5xx_and_unknown_outcomes_stay_created_then_succeed_next_run(stripe, platform, reply, code):
    payments = [make_payment(platform, amount="30.00") for _ in range(2)]
    stripe.script = [reply]

    report = run()

    batch = PayoutBatch.objects.get()
    assert platform_report(report, "businessos").status == "created"
    assert batch.status == "created" and code in batch.error
    assert set(PartnerPayment.objects.values_list("status", "batch_id")) == {("pending", batch.pk)}
    assert AuditEvent.objects.filter(action="leads.payout_batch_retry_later", subject_id=batch.public_id).exists()

    report = run()

    batch.refresh_from_db()
    assert [(o.batch_id, o.status) for o in report.resumed] == [(batch.public_id, "paid")]
    assert batch.status == "paid" and batch.error == ""
    assert all(r.headers["Idempotency-Key"] == batch.idempotency_key for r in stripe.requests)
    assert len(stripe.transfers) == 1 and PayoutBatch.objects.count() == 1
    assert {p.status for p in PartnerPayment.objects.filter(pk__in=[p.pk for p in payments])} == {"paid"}


def test_idempotency_conflict_on_resume_is_never_treated_as_failed(stripe, platform, monkeypatch):
    """The destination changed after a first attempt that may have paid: Stripe refuses the key with
    other parameters. The batch must stay in flight for staff, not release its payments."""
    make_payment(platform, amount="60.00")
    monkeypatch.setattr(batches, "_batch_complete", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash")))
    run()
    monkeypatch.undo()
    platform.stripe_account_id = "acct_SomethingElse"
    platform.save()

    report = run()

    batch = PayoutBatch.objects.get()
    assert [o.status for o in report.resumed] == ["created"]
    assert batch.status == "created" and "needs staff review" in batch.error
    assert PartnerPayment.objects.get().batch_id == batch.pk
    assert len(stripe.transfers) == 1


@pytest.mark.parametrize("missing", ["api_key", "destination"])
def test_missing_configuration_fails_clearly_without_calling_stripe(stripe, platform, settings, missing):
    if missing == "api_key":
        settings.STRIPE_API_KEY = ""
    else:
        platform.stripe_account_id = ""
        platform.save()
    make_payment(platform, amount="60.00")

    report = run()

    batch = PayoutBatch.objects.get()
    expected = "STRIPE_API_KEY is not set" if missing == "api_key" else "has no Stripe connected account"
    assert batch.status == "failed" and expected in batch.error
    assert platform_report(report, "businessos").status == "failed"
    assert PartnerPayment.objects.get().batch_id is None
    assert not stripe.requests


def test_missing_configuration_on_resume_keeps_the_batch_in_flight(stripe, platform, settings, monkeypatch):
    make_payment(platform, amount="60.00")
    monkeypatch.setattr(batches, "_batch_complete", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash")))
    run()  # transfer made, database not updated
    monkeypatch.undo()
    settings.STRIPE_API_KEY = ""

    run()

    batch = PayoutBatch.objects.get()
    assert batch.status == "created" and "STRIPE_API_KEY is not set" in batch.error
    assert PartnerPayment.objects.get().batch_id == batch.pk


def test_credentials_refused_on_resume_keep_the_batch_but_fail_a_first_attempt(stripe, platform, monkeypatch):
    """401 is answered before Stripe looks at the idempotency key: on a resumed batch it proves nothing
    about the earlier attempt (which did pay here), so the batch stays in flight."""
    make_payment(platform, amount="60.00")
    monkeypatch.setattr(batches, "_batch_complete", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash")))
    run()
    monkeypatch.undo()
    stripe.script = [stripe_error(401, "invalid_request_error")]

    run()

    batch = PayoutBatch.objects.get()
    assert batch.status == "created" and "stripe_http_401" in batch.error
    assert PartnerPayment.objects.get().batch_id == batch.pk
    run()
    batch.refresh_from_db()
    assert batch.status == "paid" and len(stripe.transfers) == 1

    make_payment(platform, amount="60.00")
    stripe.script = [stripe_error(401, "invalid_request_error")]
    run()
    fresh = PayoutBatch.objects.exclude(pk=batch.pk).get()
    assert fresh.status == "failed" and PartnerPayment.objects.get(batch__isnull=True).status == "pending"


def test_dry_run_calls_no_provider(stripe, platform, monkeypatch):
    make_payment(platform, amount="60.00")
    monkeypatch.setattr(batches, "_batch_complete", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash")))
    run()
    monkeypatch.undo()
    make_payment(platform, amount="70.00")
    before = snapshot()

    report = run(dry_run=True)

    assert snapshot() == before and len(stripe.requests) == 1
    assert [o.status for o in report.resumed] == ["would_resume"]
    assert platform_report(report, "businessos").status == "would_pay"


def test_client_sends_one_form_request_and_parses_the_transfer(stripe):
    client = StripeClient(api_key=API_KEY, base_url=stripe.server.base_url + "/")

    transfer = client.create_transfer(
        amount_cents=1234, currency="USD", destination=ACCOUNT, idempotency_key="k-1", metadata={"batch": "payout_x"}
    )
    again = client.create_transfer(
        amount_cents=1234, currency="USD", destination=ACCOUNT, idempotency_key="k-1", metadata={"batch": "payout_x"}
    )

    assert transfer == again and transfer.id.startswith("tr_") and transfer.amount == 1234
    assert len(stripe.transfers) == 1
    stripe.script = [Reply(200, {"Content-Type": "application/json"}, json.dumps({"id": "not-a-transfer"}))]
    with pytest.raises(StripeTransientError, match="stripe_bad_response"):
        client.create_transfer(amount_cents=1, currency="usd", destination=ACCOUNT, idempotency_key="k-2")
