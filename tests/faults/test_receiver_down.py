"""Gate: a partner's receiver is down (503) for a day of simulated time. Deliveries are retried on their
scheme's schedule (webhooks/retry.py, docs/webhooks.md) and none is lost: the Standard Webhooks schedule
outlasts the day and delivers; LoveRescue's (5 attempts within 24 h, by its spec) ends `failed`, kept,
and staff recovery sends it once the receiver is back. The attempt history matches the receiver's count.

A real worker on a private Redis and this test's PostgreSQL, on a simulated clock (tests/faults/
worker_harness.py: `core.time.utc_now` = real now + an offset the test moves). The test plays beat: it
jumps the clock to just past the next due attempt (the sweeper's 30 s grace included) and sweeps; no
real hours pass. Retry jitter (up to +10 %) stays on, as in production.
"""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest
from django.db.models import Q

from core.actors import Actor
from tests.conftest import skip_or_fail
from tests.faults.worker_harness import (
    SimulatedClock,
    environment,
    producer,
    route_enqueues_to,
    wait_until,
    workers,
)
from tests.servers import LocalServer, Recorded, Reply
from tests.workers import RedisServer
from webhooks import retry, services
from webhooks.models import AttemptState, DeliveryStatus, WebhookAttempt, WebhookDelivery

pytestmark = [pytest.mark.worker, pytest.mark.redis, pytest.mark.postgres]

ACTOR = Actor.system("tests.faults")
DAY = timedelta(hours=24)
PAST_THE_GRACE = timedelta(seconds=31)
# An attempt is due at `previous + delay x (1..1.1)`; it runs at the next sweep after that.
SLACK = PAST_THE_GRACE + timedelta(seconds=15)


@pytest.fixture
def broker(tmp_path, require_postgres, transactional_db):
    if not shutil.which("redis-server"):
        skip_or_fail("needs redis-server on PATH to run a private Redis (apt-get install redis-server)")
    with RedisServer(tmp_path / "redis") as server:
        yield server


def test_receiver_down_for_a_day(broker, tmp_path, monkeypatch, settings):
    settings.WEBHOOK_REQUIRE_HTTPS = False
    clock = SimulatedClock(tmp_path / "clock")
    app = producer(broker.url)
    route_enqueues_to(app, monkeypatch)
    env = environment(tmp_path, broker.url, WEBHOOK_TIMEOUT_SECONDS="2")
    back_at = clock.now() + DAY

    def receiver_handler(request: Recorded) -> Reply:
        if clock.now() < back_at:
            return Reply(503, {}, b"down for maintenance")
        return Reply(200, {}, b"ok")

    def settled() -> bool:
        """No delivery the last sweep enqueued is left, none is being attempted: the worker has caught up.
        (One that fell due within the sweeper's grace waits for the next step, as it would for beat.)"""
        now = clock.now()
        busy = Q(next_attempt_at__lte=now - PAST_THE_GRACE) | Q(claimed_until__gt=now)
        return not WebhookDelivery.objects.filter(busy, status=DeliveryStatus.PENDING).exists()

    with LocalServer(receiver_handler) as receiver, workers(env, tmp_path, clock_file=clock.path) as start:
        endpoints = {
            scheme: services.webhook_endpoint_register(
                url=receiver.url(f"/{scheme}"), events=["*"], scheme=scheme, owner_type="organization",
                owner_id=f"org-{scheme}", actor=ACTOR,
            )[0]
            for scheme in ("standard", "loverescue")
        }  # fmt: skip
        worker = start()
        for n in range(2):
            services.webhook_event_publish(event_type="alert.created", payload={"n": n}, endpoints=endpoints.values())

        steps = 0
        while True:
            wait_until(settled, 30, f"the worker to catch up at {clock.now() - back_at + DAY}", worker)
            pending = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).order_by("next_attempt_at")
            if not pending.exists():
                break
            steps += 1
            assert steps < 40, "more sweeps than the schedules allow"
            clock.advance_to(pending.first().next_attempt_at + PAST_THE_GRACE)
            services.webhook_deliveries_sweep(now=clock.now())  # beat

        # A day and more has passed: Standard Webhooks deliveries went through on their 8th attempt...
        assert clock.now() > back_at
        standard = WebhookDelivery.objects.filter(endpoint=endpoints["standard"])
        assert set(standard.values_list("status", "attempt_count")) == {(DeliveryStatus.SUCCEEDED, 8)}
        # ... LoveRescue's used their 5 attempts within the day, and are kept, failed; staff recover them.
        loverescue = WebhookDelivery.objects.filter(endpoint=endpoints["loverescue"])
        assert set(loverescue.values_list("status", "attempt_count")) == {(DeliveryStatus.FAILED, 5)}
        for delivery in loverescue:
            assert delivery.last_attempt_at - delivery.first_attempt_at < DAY
        assert services.webhook_endpoint_recover(endpoint=endpoints["loverescue"], since=back_at - DAY * 2,
                                                 actor=ACTOR) == 2  # fmt: skip
        wait_until(lambda: not WebhookDelivery.objects.exclude(status=DeliveryStatus.SUCCEEDED).exists(), 30,
                   "the recovered deliveries", worker)  # fmt: skip

    # None lost, the history matches the receiver, and each delivery got exactly one 2xx: its last attempt.
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 4
    attempts = WebhookAttempt.objects.all()
    assert len(receiver.requests) == attempts.count() == 2 * 8 + 2 * (5 + 1)
    assert not attempts.exclude(state=AttemptState.COMPLETED).exists()
    for delivery in WebhookDelivery.objects.select_related("endpoint"):
        codes = list(delivery.attempts.order_by("attempted_at", "pk").values_list("status_code", flat=True))
        assert codes[-1] == 200 and set(codes[:-1]) == {503}

        # On schedule: each wait between the failed attempts is the policy's delay (+ jitter, + the sweep).
        policy = retry.policy_for(delivery.endpoint.scheme)
        failed = list(delivery.attempts.filter(status_code=503).values_list("attempted_at", flat=True))
        assert len(failed) == {"standard": 7, "loverescue": 5}[delivery.endpoint.scheme]
        for n, (before, after) in enumerate(zip(failed, failed[1:])):
            delay = policy.delays[n]
            assert delay <= after - before <= delay * (1 + retry.JITTER_FRACTION) + SLACK, (n, after - before)
