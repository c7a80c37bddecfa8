"""Webhook delivery throughput and publish-to-first-attempt latency with 2 real Celery worker processes,
next to the floor: the same receiver hit by a bare httpx loop (same number of POSTs of the same body, from
2 threads to mirror the 2 workers), measured in the same run.

The ratio (issue 15) is delivery throughput: N events are published (committed outbox rows, the broker
messages publishing sent held back: one wake-up per endpoint, so one here), then those messages are sent
at once and the clock runs until every delivery is recorded succeeded. Publishing is the domain's own
transaction and is timed apart; the end-to-end measure (one event published and committed at a time while
the workers deliver) is printed too, with the broker messages each phase cost (sent by publishing and
consumed by the workers, from their logs). Last, without Celery, one thread runs every message of
BENCH_WEBHOOK_PROFILED (default 200) published events in turn, as a worker would, and counts SQL statements,
commits, messages and its own CPU per delivery.

    make bench                                             # SQLite temp file + filesystem broker
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/platform REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/webhook_delivery.py         # PostgreSQL + Redis, as in production

BENCH_WEBHOOK_EVENTS (default 500) sets N. Workers consume a queue of their own (other workers on the
same broker are not disturbed); the bench's webhook rows are deleted at the end (audit rows stay:
they are append-only).
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))
TMP = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
os.environ.setdefault("APP_ENV", "test")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["OUTBOUND_ALLOW_LOOPBACK"] = "true"
os.environ["WEBHOOK_REQUIRE_HTTPS"] = "false"
os.environ.pop("CELERY_TASK_ALWAYS_EAGER", None)
if "DATABASE_URL" not in os.environ:
    os.environ["DATABASE_URL"] = f"sqlite:///{TMP / 'bench.sqlite3'}"
if os.environ.get("REDIS_URL"):
    os.environ.setdefault("CELERY_BROKER_URL", os.environ["REDIS_URL"])
else:
    os.environ["CELERY_BROKER_DIR"] = str(TMP / "broker")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from bench._harness import report  # noqa: E402
from webhooks import services  # noqa: E402
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent  # noqa: E402
from webhooks.signing import build_headers  # noqa: E402

N = int(os.environ.get("BENCH_WEBHOOK_EVENTS", "500"))
TARGET = (">=", 0.5)  # issue 15: deliveries/s at least half the bare keep-alive httpx loop's POST/s
WORKERS = 2
UNLOADED = int(os.environ.get("BENCH_WEBHOOK_UNLOADED", "30"))
PROFILED = int(os.environ.get("BENCH_WEBHOOK_PROFILED", "200"))
QUEUE = f"bench-webhooks-{uuid.uuid4().hex[:12]}"
PAYLOAD = {
    "alertId": "alert-uuid",
    "clientId": "user-uuid",
    "alertType": "CRISIS",
    "severity": "CRITICAL",
    "message": "Crisis pathway triggered",
    "metadata": {"k": "v"},
    "createdAt": "2026-02-12T15:30:00Z",
}


class Receiver(BaseHTTPRequestHandler):
    """Answers 200 at once. Buffered writes (status, headers and body leave in one segment, flushed by
    handle_one_request) and TCP_NODELAY, so the floor is not a Nagle / delayed-ACK artefact."""

    protocol_version = "HTTP/1.1"
    wbufsize = 65536
    count = 0
    lock = threading.Lock()

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with Receiver.lock:
            Receiver.count += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


# A worker of the application (`celery -A config worker`) whose own delivery messages (a run handing its
# endpoint on, a retry) go to the bench's queue too, not to the `webhooks` queue other workers may consume.
WORKER_MAIN = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
from config.celery import app
app.conf.task_routes = ({"webhooks.tasks.deliver_webhook": {"queue": os.environ["BENCH_WEBHOOK_QUEUE"]}},)
app.worker_main(sys.argv[1:])
"""


def start_workers(log_dir: Path) -> list[subprocess.Popen]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", BENCH_WEBHOOK_QUEUE=QUEUE)
    processes = []
    for i in range(WORKERS):
        log = (log_dir / f"worker{i}.log").open("wb")
        command = [
            sys.executable,
            "-c",
            WORKER_MAIN,
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "-l",
            "info",
            "-Q",
            QUEUE,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"bench{i}-{QUEUE}@%h",
        ]
        processes.append(subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 60
    for i, process in enumerate(processes):
        while b" ready." not in (log_dir / f"worker{i}.log").read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker {i} did not start:\n{(log_dir / f'worker{i}.log').read_text()}")
            time.sleep(0.1)
    return processes


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _default_tls_context():
    from core.outbound import _default_tls_context as context

    return context()


def floor_run(url: str, body: bytes, headers: dict[str, str], *, keep_alive: bool) -> float:
    """Seconds for N POSTs from WORKERS threads with bare httpx."""
    per_thread = [N // WORKERS + (1 if i < N % WORKERS else 0) for i in range(WORKERS)]

    def loop(count: int) -> None:
        if keep_alive:
            with httpx.Client() as client:
                for _ in range(count):
                    client.post(url, content=body, headers=headers).raise_for_status()
        else:
            for _ in range(count):
                # A new client and connection per POST with a TLS context built once, as guarded_request does.
                with httpx.Client(verify=_default_tls_context()) as client:
                    client.post(url, content=body, headers=headers).raise_for_status()

    threads = [threading.Thread(target=loop, args=(count,)) for count in per_thread]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def tasks_received(log_dir: Path) -> int:
    """Delivery task messages the bench's workers took so far (from their `-l info` logs)."""
    count = 0
    for i in range(WORKERS):
        for line in (log_dir / f"worker{i}.log").read_text(errors="replace").splitlines():
            if "webhooks.tasks.deliver_webhook[" in line and line.rstrip().endswith("received"):
                count += 1
    return count


def in_process(endpoint: WebhookEndpoint, count: int) -> dict[str, float]:
    """One worker's work without Celery: `count` events published (their messages held back), then every
    message (those and any the runs send) run here in turn, as one worker would. Statements and commits
    (a transaction's, or a write in autocommit) per delivery, messages per delivery, and this thread's CPU
    (the receiver's threads are not counted)."""
    from webhooks.tasks import deliver_webhook

    messages: list[int] = []
    services._enqueue = lambda delivery_id, countdown=None: messages.append(delivery_id)
    for _ in range(count):
        services.webhook_event_publish(event_type="alert.created", payload=PAYLOAD, endpoints=[endpoint])
    counts = {"statements": 0, "commits": 0, "runs": 0}

    def counted(execute, sql, params, many, context):
        counts["statements"] += 1
        if connection.get_autocommit() and not sql.lstrip()[:6].upper() == "SELECT":
            counts["commits"] += 1
        return execute(sql, params, many, context)

    real_commit = connection.commit

    def commit():
        counts["commits"] += 1
        return real_commit()

    connection.commit = commit
    cpu = time.thread_time()
    try:
        with connection.execute_wrapper(counted):
            while messages:
                counts["runs"] += 1
                deliver_webhook.run(messages.pop(0))
    finally:
        del connection.commit
    cpu = time.thread_time() - cpu
    delivered = WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.SUCCEEDED).count()
    return {
        "statements": counts["statements"] / count,
        "commits": counts["commits"] / count,
        "messages": counts["runs"] / count,
        "cpu_ms": cpu / count * 1000,
        "delivered": delivered,
    }


def main() -> None:
    call_command("migrate", verbosity=0)
    db = connection.vendor
    broker = "redis" if settings.CELERY_BROKER_URL.startswith("redis") else "filesystem"
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"

    from core.actors import Actor
    from webhooks.tasks import deliver_webhook

    # The bench's own queue, so other workers on the same broker never take its tasks.
    sent = [0]

    def send(delivery_id: int, countdown: float | None = None) -> None:
        sent[0] += 1
        deliver_webhook.apply_async(args=[delivery_id], countdown=countdown, queue=QUEUE)

    held_back: list[int] = []
    services._enqueue = lambda delivery_id, countdown=None: held_back.append(delivery_id)
    endpoint, secret = services.webhook_endpoint_register(
        owner_type="bench",
        owner_id=QUEUE,
        url=url,
        events=["alert.created"],
        scheme="loverescue",
        actor=Actor.system("bench"),
    )
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint)

    def wait_delivered(count: int) -> None:
        deadline = time.monotonic() + max(120, N * 0.5)
        while deliveries.filter(status=DeliveryStatus.SUCCEEDED).count() < count:
            if time.monotonic() > deadline:
                done = deliveries.filter(status=DeliveryStatus.SUCCEEDED).count()
                raise SystemExit(f"only {done}/{count} delivered")
            time.sleep(0.02)

    workers = start_workers(TMP)
    try:
        # Burst (the ratio): N committed deliveries, their N messages sent at once.
        started = time.perf_counter()
        for _ in range(N):
            services.webhook_event_publish(event_type="alert.created", payload=PAYLOAD, endpoints=[endpoint])
        published = time.perf_counter() - started
        released_at = time.time()
        started = time.perf_counter()
        for delivery_id in held_back:
            send(delivery_id)
        wait_delivered(N)
        elapsed = time.perf_counter() - started
        burst_ids = set(deliveries.values_list("pk", flat=True))
        burst_messages, burst_sent, burst_runs = len(held_back), sent[0], tasks_received(TMP)
        services._enqueue = send
        # End to end: one event published and committed at a time while the workers deliver.
        started = time.perf_counter()
        for _ in range(N):
            services.webhook_event_publish(event_type="alert.created", payload=PAYLOAD, endpoints=[endpoint])
        published_one_by_one = time.perf_counter() - started
        wait_delivered(2 * N)
        elapsed_end_to_end = time.perf_counter() - started
        time.sleep(0.5)  # the last run's final look
        e2e_sent, e2e_runs = sent[0] - burst_sent, tasks_received(TMP) - burst_runs
        # Unloaded: one event at a time, each waited for, so the latency is the pipeline's, not a queue's.
        unloaded = []
        for _ in range(UNLOADED):
            event = services.webhook_event_publish(event_type="alert.created", payload=PAYLOAD, endpoints=[endpoint])
            while not WebhookDelivery.objects.filter(event=event, status=DeliveryStatus.SUCCEEDED).exists():
                time.sleep(0.005)
            unloaded.append(event.pk)
    finally:
        stop(workers)

    first_attempts: dict[int, float] = {}
    attempts = 0
    for delivery_id, created_at, attempted_at in (
        WebhookAttempt.objects.filter(delivery__endpoint=endpoint)
        .values_list("delivery_id", "delivery__event__created_at", "attempted_at")
        .order_by("delivery_id", "attempted_at")
    ):
        attempts += 1
        # A burst delivery's wait starts when its message was released, not when its row was committed.
        since = released_at if delivery_id in burst_ids else created_at.timestamp()
        first_attempts.setdefault(delivery_id, (attempted_at.timestamp() - since) * 1000)
    unloaded_ids = set(WebhookDelivery.objects.filter(event_id__in=unloaded).values_list("pk", flat=True))
    latencies = [ms for pk, ms in first_attempts.items() if pk in burst_ids]
    end_to_end_latencies = [ms for pk, ms in first_attempts.items() if pk not in burst_ids | unloaded_ids]
    idle_latencies = [ms for pk, ms in first_attempts.items() if pk in unloaded_ids]
    event = WebhookEvent.objects.filter(deliveries__endpoint=endpoint).first()
    body = event.body
    headers = build_headers(
        scheme="loverescue",
        event_id=event.public_id,
        event_type=event.type,
        event_created_at=event.created_at,
        body=body,
        secrets=[secret],
        timestamp=int(time.time()),
    )
    received_by_workers = Receiver.count
    profiled = in_process(endpoint, PROFILED) if PROFILED else None
    floor_new = floor_run(url, body, headers, keep_alive=False)
    floor_keep = floor_run(url, body, headers, keep_alive=True)
    server.shutdown()

    rate = N / elapsed
    print(f"\nWebhook delivery: {N} events -> 1 endpoint, {WORKERS} worker processes, db={db}, broker={broker}")
    print(
        f"(receiver got {received_by_workers} POSTs from the workers; {attempts} attempts recorded; "
        f"publishing {N} events took {published:.2f}s before the burst, {published_one_by_one:.2f}s while "
        f"the workers delivered)\n"
    )
    rows = [
        ("floor: bare httpx loop, keep-alive client (2 threads)", floor_keep, N / floor_keep),
        ("httpx, new Client per POST (2 threads)", floor_new, N / floor_new),
        ("webhooks: burst of committed deliveries -> all delivered", elapsed, rate),
        ("webhooks: publish one by one -> all delivered (info)", elapsed_end_to_end, N / elapsed_end_to_end),
    ]
    print(f"{'measure':<58} {'seconds':>8} {'per s':>9} {'x floor':>8}")
    for name, seconds, per_second in rows:
        print(f"{name:<58} {seconds:>8.2f} {per_second:>9.1f} {seconds / floor_keep:>8.1f}")
    print(
        f"\nrelease-to-first-attempt latency, burst of {N}: p50 {statistics.median(latencies):.0f} ms, "
        f"p99 {percentile(latencies, 0.99):.0f} ms, max {max(latencies):.0f} ms"
    )
    print(
        f"publish-to-first-attempt latency, one by one: p50 {statistics.median(end_to_end_latencies):.0f} ms, "
        f"p99 {percentile(end_to_end_latencies, 0.99):.0f} ms"
    )
    print(
        f"unloaded (one event at a time, {UNLOADED} events): p50 {statistics.median(idle_latencies):.0f} ms, "
        f"p99 {percentile(idle_latencies, 0.99):.0f} ms"
    )
    print(
        f"per POST, one thread's view: keep-alive {floor_keep / (N / WORKERS) * 1000:.1f} ms, "
        f"new Client {floor_new / (N / WORKERS) * 1000:.1f} ms"
    )
    print(
        f"broker messages: burst {burst_messages} published for {N} deliveries, {burst_runs} task runs "
        f"({burst_runs / N:.3f} per delivery); one by one {e2e_sent} sent (publishing, hand-offs, retries), "
        f"{e2e_runs} task runs ({e2e_runs / N:.3f} per delivery)"
    )
    if profiled:
        print(
            f"in-process, one thread, no broker ({PROFILED} deliveries, {profiled['delivered'] - 2 * N - UNLOADED:.0f} "
            f"delivered): {profiled['statements']:.2f} statements, {profiled['commits']:.2f} commits, "
            f"{profiled['messages']:.3f} messages and {profiled['cpu_ms']:.2f} ms CPU per delivery"
        )
    print()
    report("webhook_delivery", rate / (N / floor_keep), *TARGET)

    event_ids = list(WebhookEvent.objects.filter(deliveries__endpoint=endpoint).values_list("pk", flat=True))
    WebhookAttempt.objects.filter(delivery__endpoint=endpoint).delete()
    WebhookDelivery.objects.filter(endpoint=endpoint).delete()
    WebhookEvent.objects.filter(pk__in=event_ids).delete()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()


if __name__ == "__main__":
    try:
        main()
    finally:
        if broker_url := os.environ.get("CELERY_BROKER_URL", ""):
            if broker_url.startswith("redis"):
                import redis

                client = redis.Redis.from_url(broker_url)
                client.delete(QUEUE, f"_kombu.binding.{QUEUE}")
                client.close()
        shutil.rmtree(TMP, ignore_errors=True)
