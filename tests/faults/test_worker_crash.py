"""Gate: the worker is killed (SIGKILL) in the middle of a webhook delivery, a message send and a payout
(issue 10 finding 12). After a new worker starts: nothing is lost, nothing is sent again after a recorded
success, and the attempt history counts every request the receiver got.

Each test uses a private Redis broker, real workers on this test's PostgreSQL database (rows committed:
transactional_db), and a real HTTP server on 127.0.0.1 as the receiver / SMS vendor / payout vendor. The
first request the server gets is held open until the worker that sent it has been killed, so the kill
lands while the request is in flight. Leases are shortened through settings (the same code paths, with
seconds instead of minutes).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from decimal import Decimal
from urllib.parse import parse_qs

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from core.actors import Actor
from leads.models import PartnerPayment, PayoutBatch
from messaging.models import OutboundMessage
from messaging.services import message_queue, messages_sweep
from tests.conftest import skip_or_fail
from tests.faults.worker_harness import environment, producer, route_enqueues_to, wait_until, workers
from tests.leads.factories import make_payment, make_platform
from tests.servers import LocalServer, Recorded, Reply
from tests.workers import RedisServer
from webhooks import services
from webhooks.models import AttemptState, DeliveryStatus, WebhookAttempt, WebhookDelivery

pytestmark = [pytest.mark.worker, pytest.mark.redis, pytest.mark.postgres]

ACTOR = Actor.system("tests.faults")
# Short leases: a webhook attempt may last 3 x 1 s; an urgent message's lease is renewed every 5/3 s.
WEBHOOK_LEASE = 5
URGENT_LEASE = 5


@pytest.fixture
def broker(tmp_path, require_postgres, transactional_db):
    if not shutil.which("redis-server"):
        skip_or_fail("needs redis-server on PATH to run a private Redis (apt-get install redis-server)")
    with RedisServer(tmp_path / "redis") as server:
        yield server


class HoldFirst:
    """A server whose first request is held open until `release()` (the worker that sent it is killed
    meanwhile); every request is answered by `answer(request)`."""

    def __init__(self, answer):
        self.answer = answer
        self.released = threading.Event()
        self.server = LocalServer(self._handle)

    def _handle(self, request: Recorded) -> Reply:
        if len(self.server.requests) == 1:
            self.released.wait(timeout=60)
        return self.answer(request)

    @property
    def requests(self) -> list[Recorded]:
        return self.server.requests

    def release(self) -> None:
        self.released.set()

    def __enter__(self) -> HoldFirst:
        self.server.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()
        self.server.stop()


def test_worker_killed_mid_webhook_delivery(broker, tmp_path, monkeypatch, settings):
    settings.WEBHOOK_REQUIRE_HTTPS = False
    app = producer(broker.url)
    route_enqueues_to(app, monkeypatch)
    env = environment(tmp_path, broker.url, WEBHOOK_TIMEOUT_SECONDS="1", WEBHOOK_LEASE_SECONDS=str(WEBHOOK_LEASE))
    with HoldFirst(lambda request: Reply(200, {}, b"ok")) as receiver, workers(env, tmp_path) as start:
        endpoint = services.webhook_endpoint_register(
            url=receiver.server.url("/hook"), events=["*"], scheme="mark", owner_type="organization",
            owner_id="org-1", actor=ACTOR,
        )[0]  # fmt: skip
        first = start()
        event = services.webhook_event_publish(event_type="alert.created", payload={"id": 1}, endpoints=[endpoint])
        delivery = WebhookDelivery.objects.get(event=event)
        wait_until(lambda: len(receiver.requests) == 1, 30, "the first POST", first)
        # In flight: the history already holds the attempt the receiver is getting.
        assert list(WebhookAttempt.objects.filter(delivery=delivery).values_list("state", flat=True)) == ["sending"]
        first.kill()
        receiver.release()

        second = start()
        # Beat's sweeper, once the dead worker's lease has expired.
        wait_until(lambda: WebhookDelivery.objects.get(pk=delivery.pk).claimed_until < timezone.now(), 30, "the lease")
        assert services.webhook_deliveries_sweep() == {"enqueued": 1, "endpoints_disabled": 0, "attempts_lost": 1}
        wait_until(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status != DeliveryStatus.PENDING, 30,
                   "the redelivery", second)  # fmt: skip

        # Nothing after the recorded success: another sweep and a duplicate broker message send nothing.
        assert services.webhook_deliveries_sweep()["enqueued"] == 0
        app.send_task("webhooks.tasks.deliver_webhook", args=[delivery.pk])
        wait_until(lambda: "deliver_webhook" in second.log() and second.log().count("succeeded in") >= 2, 20,
                   "the duplicate task", second)  # fmt: skip

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    history = list(WebhookAttempt.objects.filter(delivery=delivery).values_list("state", "status_code"))
    assert history == [(AttemptState.WORKER_LOST, None), (AttemptState.COMPLETED, 200)]
    assert len(receiver.requests) == len(history) == 2  # the history counts every POST
    assert {request.headers["webhook-id"] for request in receiver.requests} == {event.public_id}


def test_worker_killed_mid_critical_sms(broker, tmp_path, monkeypatch):
    """The crisis SMS goes out again a few seconds after the crash (its short lease, then its watchdog:
    no sweep needed), not after a 300 s claim."""
    app = producer(broker.url)
    route_enqueues_to(app, monkeypatch)
    answered: list[str] = []

    def twilio(request: Recorded) -> Reply:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        answered.append("SM" + uuid.uuid4().hex)
        body = {"sid": answered[-1], "status": "queued", "to": form.get("To")}
        return Reply(201, {"Content-Type": "application/json"}, json.dumps(body))

    with HoldFirst(twilio) as vendor:
        env = environment(
            tmp_path, broker.url, MESSAGING_BACKEND="twilio", TWILIO_ACCOUNT_SID="AC" + "0" * 32,
            TWILIO_AUTH_TOKEN="token", TWILIO_FROM_NUMBER="+15005550006", TWILIO_API_BASE_URL=vendor.server.base_url,
            MESSAGING_URGENT_LEASE_SECONDS=str(URGENT_LEASE),
        )  # fmt: skip
        with workers(env, tmp_path) as start:
            first = start()
            message = message_queue(channel="sms", recipient="+447911123456", body="LoveRescue: 1 critical alert",
                                    purpose="integration.alert_critical", actor=ACTOR)  # fmt: skip
            wait_until(lambda: len(vendor.requests) == 1, 30, "the first send", first)
            first.kill()
            killed_at = time.monotonic()
            vendor.release()

            second = start()  # no sweep: the watchdog the first worker left in the broker does it
            wait_until(lambda: OutboundMessage.objects.get(pk=message.pk).status == "sent", 30, "the resend", second)
            recovered_in = time.monotonic() - killed_at
            print(f"critical SMS sent again {recovered_in:.1f} s after its worker was killed")

            assert messages_sweep() == 0  # nothing left to send
            app.send_task("messaging.tasks.send_message", args=[message.pk])  # a duplicate broker message
            # The watchdog's run, then the duplicate's: both finished.
            wait_until(lambda: second.log().count("succeeded in") >= 2, 20, "the duplicate task", second)

    message.refresh_from_db()
    assert message.status == "sent" and message.provider_message_id == answered[1]  # the second request's
    assert message.attempts == len(vendor.requests) == 2  # every provider request is counted
    # Lease + watchdog margin, plus starting a worker: far under the 300 s claim it used to wait for.
    assert recovered_in < 60, recovered_in


API_KEY = "sk_test_" + "faults0123456789abcdef"
ACCOUNT = "acct_1Faults"


class StripeLike:
    """POST /v1/transfers with idempotency keys: the first request with a key creates the transfer (even
    if its answer never reaches the caller), a repeat answers the same transfer and creates nothing."""

    def __init__(self):
        self.transfers: dict[str, dict] = {}
        self.lock = threading.Lock()

    def __call__(self, request: Recorded) -> Reply:
        key = request.headers.get("Idempotency-Key", "")
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        with self.lock:
            if key not in self.transfers:
                self.transfers[key] = {"id": f"tr_{uuid.uuid4().hex[:16]}", "object": "transfer",
                                       "amount": int(form["amount"]), "currency": form["currency"]}  # fmt: skip
            transfer = self.transfers[key]
        return Reply(200, {"Content-Type": "application/json"}, json.dumps(transfer))


def test_worker_killed_mid_payout(broker, tmp_path, monkeypatch):
    app = producer(broker.url)
    stripe = StripeLike()
    platform = make_platform(
        "faultsos", minimum_payout=Decimal("10.00"), payout_backend="stripe", stripe_account_id=ACCOUNT
    ).platform
    payments = [make_payment(platform, amount=amount) for amount in ("15.00", "20.00")]
    with HoldFirst(stripe) as vendor:
        env = environment(tmp_path, broker.url, STRIPE_API_KEY=API_KEY, STRIPE_API_BASE=vendor.server.base_url)
        with workers(env, tmp_path) as start:
            first = start()
            app.send_task("leads.tasks.process_partner_payments")  # the monthly run
            wait_until(lambda: len(vendor.requests) == 1, 30, "the transfer request", first)
            first.kill()
            vendor.release()
            batch = PayoutBatch.objects.get()
            assert batch.status == PayoutBatch.Status.CREATED  # paid or not: unknown, so it stays created

            second = start()
            app.send_task("leads.tasks.resume_payout_batches")  # the daily resume (beat)
            wait_until(lambda: PayoutBatch.objects.get().status != PayoutBatch.Status.CREATED, 30, "the resume", second)
            # Nothing after the recorded success: another resume and another run pay nothing.
            app.send_task("leads.tasks.resume_payout_batches")
            app.send_task("leads.tasks.process_partner_payments")
            wait_until(lambda: second.log().count("succeeded in") >= 3, 30, "the repeated runs", second)

    batch.refresh_from_db()
    (transfer,) = stripe.transfers.values()  # paid once
    assert batch.status == PayoutBatch.Status.PAID and batch.provider_reference == transfer["id"]
    assert transfer["amount"] == 3500
    assert {r.headers["Idempotency-Key"] for r in vendor.requests} == {batch.idempotency_key}
    assert all(
        p.status == PartnerPayment.Status.PAID for p in PartnerPayment.objects.filter(pk__in=[p.pk for p in payments])
    )
    attempts = AuditEvent.objects.filter(action="leads.payout_batch_attempt", subject_id=batch.public_id).count()
    assert attempts == len(vendor.requests) == 2  # the history counts every request the provider got
    assert PayoutBatch.objects.count() == 1
