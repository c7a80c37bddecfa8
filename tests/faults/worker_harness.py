"""What the worker fault tests (issue 10 finding 12 and its gates) share: a private Redis broker, real
`celery worker` processes on the test's PostgreSQL database that a test may SIGKILL, a producer that routes
tasks exactly as the application does, and an optional simulated clock for the worker.

The worker consumes every queue the routes name (tests/faults/test_queues.py keeps every task routed), so
whatever it publishes itself (retries, watchdogs) it also runs. The simulated clock: the worker is started
through a tiny launcher that replaces `core.time.utc_now` (the one clock the outbox, webhooks and messaging
read) before any app module imports it, with `real now + the offset in a file` the test writes; the test
process passes the same simulated `now` to the sweepers it runs as beat would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings
from django.utils import timezone

from tests.workers import BASE_DIR, test_database_url, worker_environment

LAUNCHER = """
import os, sys
from datetime import timedelta
sys.path.insert(0, os.getcwd())
import core.time
from django.utils import timezone
clock_file = os.environ["SIMULATED_CLOCK_FILE"]
def simulated_utc_now():
    with open(clock_file) as handle:
        return timezone.now() + timedelta(seconds=float(handle.read() or 0))
core.time.utc_now = simulated_utc_now  # before any app module binds it
from celery.__main__ import main
sys.argv = ["celery", *sys.argv[1:]]
sys.exit(main())
"""


def queues() -> str:
    """Every queue a task is routed to, comma-separated (the worker consumes them all)."""
    names = {settings.CELERY_TASK_DEFAULT_QUEUE, "critical"}
    for route in settings.CELERY_TASK_ROUTES:
        if isinstance(route, dict):
            names |= {target["queue"] for target in route.values()}
    return ",".join(sorted(names))


def environment(tmp_path: Path, redis_url: str, **variables: str) -> dict[str, str]:
    env = worker_environment(
        tmp_path,
        DATABASE_URL=test_database_url(),
        CELERY_BROKER_URL=redis_url,
        REDIS_URL=redis_url,
        OUTBOUND_ALLOW_LOOPBACK="true",
        WEBHOOK_REQUIRE_HTTPS="false",
    )
    env.update(variables)
    return env


class Worker:
    """One solo-pool worker process; `kill()` is a SIGKILL (nothing after it runs: no ack, no cleanup)."""

    def __init__(self, env: dict[str, str], log_path: Path, *, clock_file: Path | None = None):
        self.log_path = log_path
        name = f"fault-{uuid.uuid4().hex[:8]}@%h"
        args = ["-A", "config", "worker", "--pool=solo", "--concurrency=1", "-l", "info", "--without-gossip",
                "--without-mingle", "--without-heartbeat", "-Q", queues(), "-n", name]  # fmt: skip
        if clock_file is not None:
            env = {**env, "SIMULATED_CLOCK_FILE": str(clock_file)}
            command = [sys.executable, "-c", LAUNCHER, *args]
        else:
            command = [str(Path(sys.executable).with_name("celery")), *args]
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        wait_until(lambda: "ready." in self.log(), timeout, "the worker to start", self)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def wait_until(condition: Callable[[], bool], timeout: float, what: str, worker: Worker | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if worker is not None and worker.process.poll() is not None and worker.process.returncode != -signal.SIGKILL:
            pytest.fail(f"worker exited with {worker.process.returncode} waiting for {what}:\n{worker.log()[-6000:]}")
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout:.0f}s waiting for {what}" + (f":\n{worker.log()[-6000:]}" if worker else "")
            )
        time.sleep(0.1)


@contextmanager
def workers(env: dict[str, str], tmp_path: Path, *, clock_file: Path | None = None) -> Iterator[Callable[[], Worker]]:
    """`start()` starts one more worker (logging to tmp_path/worker-N.log); all are stopped at the end."""
    started: list[Worker] = []

    def start() -> Worker:
        worker = Worker(env, tmp_path / f"worker-{len(started) + 1}.log", clock_file=clock_file)
        started.append(worker)
        worker.wait_ready()
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


def producer(redis_url: str) -> Celery:
    """Publishes to the private broker with the application's own routes (urgent messages to `critical`)."""
    app = Celery("fault-producer", broker=redis_url, set_as_current=False)
    app.conf.task_routes = settings.CELERY_TASK_ROUTES
    app.conf.task_default_queue = settings.CELERY_TASK_DEFAULT_QUEUE
    return app


def route_enqueues_to(app: Celery, monkeypatch) -> None:
    """The test process's enqueue seams (webhooks, messaging) publish through `app` to the private broker."""
    import messaging.tasks
    from webhooks import services

    monkeypatch.setattr(
        services,
        "_enqueue",
        lambda delivery_id, countdown=None: app.send_task(
            "webhooks.tasks.deliver_webhook", args=[delivery_id], countdown=countdown
        ),
    )
    monkeypatch.setattr(
        messaging.tasks,
        "enqueue_send",
        lambda message_id, countdown=None, urgent=None, drain=False: app.send_task(
            "messaging.tasks.send_message",
            args=[message_id],
            kwargs={"drain": True} if drain else None,  # a wake-up's prompt (messaging.outbox)
            countdown=countdown,
            headers=None if urgent is None else {messaging.tasks.URGENT_HEADER: urgent},
        ),
    )


class SimulatedClock:
    """`real now + offset`, the offset kept in a file the worker's clock reads at every call."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = timedelta(0)
        self._write()

    def now(self) -> datetime:
        return timezone.now() + self.offset

    def advance_to(self, when: datetime) -> None:
        if when > self.now():
            self.offset += when - self.now()
            self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(str(self.offset.total_seconds()))
        os.replace(tmp, self.path)  # the worker never reads a half-written file
