"""Issue 10, finding 8: a worker that loses Redis while it holds an unacknowledged message survives, and
the message still runs exactly once afterwards.

A real worker (tests/workers.py) consumes a private redis-server on a spare port (the test runner's own
Redis is never touched). The worker holds a countdown task, unacknowledged (a countdown waits in the worker;
acks are late), when Redis is killed (SIGKILL) and started again on the same port with its data (an
append-only file, as a production Redis keeps it). Before the fix (config/celery.py's guard) the worker
exited with `Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")` while
reconnecting. Now it reconnects, and Redis delivers the held message again once it has been unacknowledged
for the visibility timeout (4 s here through CELERY_VISIBILITY_TIMEOUT; 2 h in production, where the outbox
sweepers re-enqueue messages and webhooks long before).
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections import OrderedDict
from types import SimpleNamespace

import pytest
from celery import Celery

from tests.conftest import skip_or_fail
from tests.workers import RedisServer, celery_worker, worker_environment

pytestmark = [pytest.mark.worker, pytest.mark.redis]

VISIBILITY_TIMEOUT = 4
# The visibility timeout, then kombu's restore scan (every 10 s, config/settings.py), then the run itself.
RECOVERY_BUDGET = VISIBILITY_TIMEOUT + 10 + 16


def test_the_guard_leaves_a_detached_channels_messages_to_redis():
    """Without a broker: config.celery's guard is installed on kombu's Redis QoS, and a restore through a
    detached transport (what crashed the worker) leaves the messages to Redis instead of raising."""
    from kombu.transport import redis as redis_transport

    assert getattr(redis_transport.QoS.restore_unacked, "platform_guard", False)
    qos = redis_transport.QoS.__new__(redis_transport.QoS)
    qos.channel = SimpleNamespace(connection=SimpleNamespace(client=None))  # transport detached by collect()
    qos._delivered = OrderedDict(tag=object())
    assert qos.restore_unacked() is None
    assert not qos._delivered  # nothing left for a second restore at exit


def wait_until(condition, timeout: float, what: str, worker, log_path):
    deadline = time.monotonic() + timeout
    while not condition():
        log = log_path.read_text(errors="replace")[-6000:]
        if worker.poll() is not None:
            pytest.fail(f"worker exited with {worker.returncode} {what}:\n{log}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s {what}:\n{log}")
        time.sleep(0.1)


def test_worker_survives_redis_restart_while_holding_an_unacked_message(tmp_path):
    if not shutil.which("redis-server"):
        skip_or_fail("needs redis-server on PATH to run a private Redis (apt-get install redis-server)")
    queue = f"outage-{uuid.uuid4().hex[:8]}"
    heartbeat = tmp_path / "heartbeat.json"
    log_path = tmp_path / "worker.log"
    with RedisServer(tmp_path / "redis", persistent=True) as redis_server:
        env = worker_environment(
            tmp_path,
            CELERY_BROKER_URL=redis_server.url,
            REDIS_URL=redis_server.url,
            CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
        )
        producer = Celery("outage-producer", broker=redis_server.url, set_as_current=False)
        client = redis_server.client()
        try:
            with celery_worker(env, log_path, queue, loglevel="info", name="outage") as worker:
                wait_until(lambda: "ready." in log_path.read_text(errors="replace"), 30, "starting", worker, log_path)
                # A countdown longer than the outage: the worker holds the message, unacknowledged, meanwhile.
                task_id = producer.send_task(
                    "core.tasks.record_heartbeat", args=[str(heartbeat), "held"], queue=queue, countdown=3
                ).id
                wait_until(lambda: f"[{task_id}] received" in log_path.read_text(errors="replace"), 15,
                           "receiving the task", worker, log_path)  # fmt: skip
                assert client.hlen("unacked") == 1  # held by the worker, not acknowledged
                client.close()

                redis_server.kill()
                time.sleep(1.0)  # the worker notices, fails to reconnect at least once
                redis_server.start()
                client = redis_server.client()

                wait_until(heartbeat.exists, RECOVERY_BUDGET, "running the held task after the outage",
                           worker, log_path)  # fmt: skip
                # Nothing is left to deliver again: acknowledged, and neither queued nor held.
                wait_until(lambda: client.hlen("unacked") == 0, 10, "acknowledging the task", worker, log_path)
                assert client.llen(queue) == 0
                time.sleep(2.0)  # a duplicate would be running by now
                assert worker.poll() is None, log_path.read_text(errors="replace")
                log = log_path.read_text(errors="replace")
                assert log.count(f"[{task_id}] succeeded") == 1, log
                assert "Unrecoverable error" not in log
                assert log.count("Connected to redis://") >= 2  # it reconnected (same process)
                assert '"token": "held"' in heartbeat.read_text()
        finally:
            producer.close()
            client.close()
