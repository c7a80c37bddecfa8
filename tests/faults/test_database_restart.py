"""Issue 10: PostgreSQL going away under a live server (finding 10 and the "PostgreSQL restarted under load"
gate).

A real gunicorn (sync workers, as the Dockerfile runs it) talks to this test's PostgreSQL database through
a TCP fault proxy (tests/faults/tcp_proxy.py); the PostgreSQL the test runner uses is never restarted.

- The connection is cut exactly when the access row is sent (the proxy resets the connection that carries
  `INSERT INTO "audit_accesslog"`, before the server sees it): the client list the view had prepared never
  leaves; the partner gets LoveRescue's 503 body. Before the fix it got the 200 with client names.
- A full outage under concurrent requests (every connection reset, new ones refused), then recovery:
  every answer during the outage is the API's JSON 500/503 body (never a traceback or an HTML page),
  every 200 has its access row, and the same worker processes answer 200 again once the database is back
  (CONN_MAX_AGE + CONN_HEALTH_CHECKS in config/settings.py), with no process restarted.
- A database that hangs (connections accepted, never answered): requests answer 503 within the connect
  timeout (DB_CONNECT_TIMEOUT), no worker is killed, and all is well once it answers again.
- Persistent connections cut while idle: the next requests reconnect transparently (CONN_HEALTH_CHECKS).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from django.db import connection

from audit.models import AccessLog
from tests.faults.tcp_proxy import TcpFaultProxy
from tests.integration.factories import link, make_client, make_partner, make_therapist
from tests.workers import test_database_url

pytestmark = [pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
WORKERS = 2
CLIENTS_PATH = "/api/integration/clients"
LOVERESCUE_ERROR_KEYS = {"error", "code"}
UNAVAILABLE = {"error": "Service temporarily unavailable, try again shortly", "code": "SERVICE_UNAVAILABLE"}
CLIENT_NAMES = ("Quentin", "Rosalind")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    process: subprocess.Popen
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def booted_workers(self) -> int:
        return self.log().count("Booting worker with pid")


@contextmanager
def gunicorn_server(database_url: str, tmp_path: Path, **variables: str) -> Iterator[LiveServer]:
    """gunicorn on a free port over `database_url`, in test mode with DEBUG off (as production renders
    errors), no Redis (per-process rate-limit counters) and a throwaway broker folder; `variables` are
    added to its environment."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL", "DEBUG")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        APP_ENV="test",
        DATABASE_URL=database_url,
        CELERY_BROKER_DIR=str(tmp_path / "broker"),
        PYTHONUNBUFFERED="1",
    )
    env.update(variables)
    log_path = tmp_path / "gunicorn.log"
    command = [
        str(GUNICORN), "config.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS),
        "--timeout", "30", "--graceful-timeout", "5", "--log-level", "info",
        "--no-control-socket",  # its default path is one per user: parallel servers would share it
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = LiveServer(process, f"http://127.0.0.1:{port}", log_path)
    try:
        deadline = time.monotonic() + 45  # importing Django in each worker is slow on a busy 2-core machine
        while server.booted_workers() < WORKERS or not _answers(server.base_url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start (exit {process.poll()}):\n{server.log()[-4000:]}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _answers(base_url: str) -> bool:
    try:
        httpx.get(f"{base_url}/health", timeout=2)
    except httpx.HTTPError:
        return False
    return True


@dataclass
class World:
    headers: dict[str, str]
    proxy: TcpFaultProxy


@pytest.fixture
def world(transactional_db, require_postgres) -> Iterator[World]:
    """A partner acting for a therapist with two consented clients, committed (the server is another
    process), and a fault proxy in front of this test's database."""
    therapist = make_therapist()
    for first in CLIENT_NAMES:
        link(therapist, make_client(first, "Fault"))
    # A high limit: the load below must never meet the partner's 100/min.
    partner = make_partner(therapists=[therapist], rate_limit=100_000)
    db = connection.settings_dict
    with TcpFaultProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)) as proxy:
        yield World({"Authorization": f"Bearer {partner.token(therapist)}"}, proxy)


def _through(proxy: TcpFaultProxy) -> str:
    """This test's database URL, reached through the proxy."""
    parts = urlsplit(test_database_url())
    credentials = parts.netloc.rsplit("@", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@{proxy.host}:{proxy.port}"))


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    request_id: str
    sent: float  # time.monotonic() when the request was sent
    at: float  # ... and when its answer arrived


def _get(http: httpx.Client, base_url: str, headers: dict[str, str]) -> Answer:
    sent = time.monotonic()
    response = http.get(base_url + CLIENTS_PATH, headers=headers)
    return Answer(
        response.status_code,
        response.headers.get("Content-Type", ""),
        response.content,
        response.headers.get("X-Request-ID", ""),
        sent,
        time.monotonic(),
    )


def _assert_clean_failure(answer: Answer) -> None:
    """The API's own error body: JSON with LoveRescue's keys, no internals, nothing of the data."""
    text = answer.body.decode(errors="replace")
    assert answer.status in (500, 503), (answer.status, text)
    assert answer.content_type.split(";")[0] == "application/json", (answer.content_type, text)
    assert "Traceback" not in text and "<html" not in text.lower(), text
    assert not any(name in text for name in CLIENT_NAMES), text
    body = json.loads(answer.body)
    assert set(body) == LOVERESCUE_ERROR_KEYS, body


def _assert_rows_for_every_200(answers: list[Answer]) -> None:
    served = {a.request_id for a in answers if a.status == 200}
    logged = set(AccessLog.objects.filter(request_id__in=served, status_code=200).values_list("request_id", flat=True))
    assert served - logged == set(), "200s served without an access row"


def test_cut_at_the_access_row_withholds_the_client_list(world, tmp_path):
    with gunicorn_server(_through(world.proxy), tmp_path) as server, httpx.Client(timeout=10) as http:
        healthy = _get(http, server.base_url, world.headers)
        assert healthy.status == 200, healthy.body
        assert all(name in healthy.body.decode() for name in CLIENT_NAMES)

        # The access row is a prepared statement (DB_PREPARED_STATEMENTS): its SQL text crosses the wire once
        # per connection, when it is prepared. Reset the idle connections first; the next request finds its
        # connection dead without a round trip (CONN_HEALTH_CHECKS), reconnects and prepares on the new one.
        world.proxy.cut()
        idle_cuts = world.proxy.cut_connections
        world.proxy.cut_on(b'INSERT INTO "audit_accesslog"')
        cut = _get(http, server.base_url, world.headers)
        assert world.proxy.cut_connections == idle_cuts + 1  # the reset happened at the access row, nowhere else

        assert cut.status == 503, cut.body
        assert json.loads(cut.body) == UNAVAILABLE
        _assert_clean_failure(cut)
        assert not AccessLog.objects.filter(request_id=cut.request_id).exists()

        # The worker that lost its connection reconnects on its next request: no restart.
        after = [_get(http, server.base_url, world.headers) for _ in range(2 * WORKERS)]
        assert [a.status for a in after] == [200] * len(after), [a.body for a in after]
        _assert_rows_for_every_200([healthy, *after])
        assert server.process.poll() is None
        assert server.booted_workers() == WORKERS, server.log()[-4000:]


def test_outage_under_load_fails_cleanly_and_recovers_without_a_restart(world, tmp_path):
    # Phases end on answers counted, not on fixed sleeps alone: on a busy 2-core machine a worker's first
    # requests can take a second or more.
    threads_count, phase_min, phase_budget, recovery_budget = 4, 1.0, 15.0, 10.0
    answers: list[Answer] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    lock = threading.Lock()

    with gunicorn_server(_through(world.proxy), tmp_path) as server:

        def load() -> None:
            with httpx.Client(timeout=10) as http:
                while not stop.is_set():
                    try:
                        answer = _get(http, server.base_url, world.headers)
                    except httpx.HTTPError as exc:  # a dropped HTTP connection would be a failure too
                        errors.append(exc)
                        return
                    with lock:
                        answers.append(answer)

        threads = [threading.Thread(target=load, daemon=True) for _ in range(threads_count)]
        for thread in threads:
            thread.start()
        def answered(since: float, status: int | None = None) -> int:
            with lock:
                return sum(1 for a in answers if a.sent > since and (status is None or a.status == status))

        def wait(count, since: float, status: int | None = None) -> None:
            started = time.monotonic()
            while time.monotonic() - started < phase_budget:
                if time.monotonic() - started >= phase_min and answered(since, status) >= count:
                    return
                time.sleep(0.05)

        wait(2 * threads_count, 0.0, 200)
        outage_started = time.monotonic()
        world.proxy.outage()  # every database connection reset, new ones refused
        wait(2 * threads_count, outage_started)
        restored_at = time.monotonic()
        world.proxy.restore()
        deadline = restored_at + recovery_budget
        while time.monotonic() < deadline:  # until every client has seen several 200s after the restore
            if answered(restored_at, 200) >= 5 * threads_count and time.monotonic() - restored_at > 2.0:
                break
            time.sleep(0.1)
        stop.set()
        for thread in threads:
            thread.join(timeout=15)

        assert errors == [], errors
        before = [a for a in answers if a.at < outage_started]
        during = [a for a in answers if a.sent > outage_started and a.at < restored_at]
        after = [a for a in answers if a.at > restored_at]
        assert before and all(a.status == 200 for a in before), {a.status for a in before}
        assert during, "no request was answered during the outage"
        for answer in (a for a in answers if a.status != 200):
            _assert_clean_failure(answer)
        assert all(a.status != 200 for a in during), "a 200 while the database was unreachable"
        first_ok = next((a.at for a in after if a.status == 200), None)
        assert first_ok is not None, "no 200 after the database came back"
        settled = [a for a in after if a.sent > first_ok + 0.5]  # sent once the database was back
        assert settled and all(a.status == 200 for a in settled), [(a.status, a.body[:80]) for a in settled]
        _assert_rows_for_every_200(answers)
        assert server.process.poll() is None
        assert server.booted_workers() == WORKERS, server.log()[-4000:]  # no worker was replaced
        print(
            f"outage gate: {len(answers)} answers ({len(before)} before, {len(during)} during, {len(after)} after); "
            f"first 200 {first_ok - restored_at:.2f} s after the restore; "
            f"{world.proxy.refused} connections refused, {world.proxy.cut_connections} reset"
        )


def test_a_database_that_hangs_costs_seconds_not_the_worker(world, tmp_path):
    """New connections accepted and never answered (a host that hangs): each request gives up after
    DB_CONNECT_TIMEOUT per connection attempt (the view's, then the access row's) and answers the API's
    503; without the timeout it hung until gunicorn killed the worker."""
    connect_timeout = 2
    database_url = _through(world.proxy)
    with gunicorn_server(database_url, tmp_path, DB_CONNECT_TIMEOUT=str(connect_timeout)) as server:
        with httpx.Client(timeout=4 * connect_timeout + 10) as http:
            warm = _get(http, server.base_url, world.headers)
            assert warm.status == 200, warm.body
            world.proxy.stall()
            world.proxy.cut()
            hung = [_get(http, server.base_url, world.headers)]
            world.proxy.restore()
            after = [_get(http, server.base_url, world.headers) for _ in range(2 * WORKERS)]
        for answer in hung:
            _assert_clean_failure(answer)
            assert answer.at - answer.sent < 2 * connect_timeout + 3, answer.at - answer.sent
        assert world.proxy.stalled >= 2  # the view's connection attempt, then the access row's
        assert [a.status for a in after] == [200] * len(after), [a.body[:120] for a in after]
        assert server.booted_workers() == WORKERS, server.log()[-4000:]  # no worker was killed


def test_connections_cut_while_idle_are_replaced_transparently(world, tmp_path):
    with gunicorn_server(_through(world.proxy), tmp_path) as server, httpx.Client(timeout=10) as http:
        warm = [_get(http, server.base_url, world.headers) for _ in range(4 * WORKERS)]
        assert [a.status for a in warm] == [200] * len(warm)
        # Persistent connections (CONN_MAX_AGE): one per worker that has served a request.
        assert 1 <= world.proxy.live_connections <= WORKERS

        assert world.proxy.cut() >= 1  # the database restarted between requests

        after = [_get(http, server.base_url, world.headers) for _ in range(4 * WORKERS)]
        assert [a.status for a in after] == [200] * len(after), [a.body[:120] for a in after]
        assert world.proxy.live_connections >= 1
