"""Per-request cost of the access-log write and the rate-limit check, next to their floor.

The floor is the same API view (a precomputed body, no database work) through the same middleware
stack with the access log removed and rate limiting disabled; each variant adds one mechanism back. A
reference line adds only two bare round trips (a Redis PING before the view, a SELECT 1 after it): the least
any rate limit checked before the view plus a row written before the answer can cost. Another runs the
production stack with Django's stock connection health check (a `SELECT 1` on the reused connection before
each request's first query), which core/postgresql/base.py replaced by a poll of the idle socket (issue 15).

Requests go through Django's WSGI handler as gunicorn calls it (not the test client, which adds its own work
to every variant and switches off the request_started/finished connection handling), so each request runs
close_old_connections and the health check exactly as in production. Each variant reports the median wall
time per request and its spread over the rounds, CPU time per request (time.process_time, which a busy
machine moves less than wall time), and, counted in an untimed pass, the round trips per request to PostgreSQL
and Redis and the function calls per request (the Python work, which no other load moves), and the CPU the
PostgreSQL server process spends per request (read from /proc when the server runs on this host). Variants run
interleaved in rounds, so drift on the machine hits them all alike; the bare round trips are timed in the same
run.

    make bench                                   # SQLite + local-memory cache
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python bench/request_overhead.py  # PostgreSQL + Redis, as in production
"""

from __future__ import annotations

import io
import os
import secrets
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("APP_ENV", "test")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
if "DATABASE_URL" not in os.environ:
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.test import RequestFactory, override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework.permissions import AllowAny  # noqa: E402
from rest_framework.response import Response  # noqa: E402

from bench._harness import report  # noqa: E402
from core.api import ApiView  # noqa: E402
from core.apis import MARK  # noqa: E402

BODY = {"patients": [{"id": f"pat_{i}", "name": "x"} for i in range(5)]}


class PrecomputedView(ApiView):
    api_family = MARK
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        return Response(BODY)


urlpatterns = [path("api/v1/bench", PrecomputedView.as_view())]


class BareRoundTrips:
    """Reference, not a mechanism: one bare round trip to the cache (Redis PING) before the view and one to the
    database (SELECT 1) after it, the least the production stack needs (a counter checked before the view, a
    row written before the answer)."""

    def __init__(self, get_response):
        from django.core.cache import caches
        from django.core.cache.backends.redis import RedisCache

        self.get_response = get_response
        cache = caches["default"]
        redis = cache._cache.get_client(write=True) if isinstance(cache, RedisCache) else None
        self.cache_round_trip = redis.ping if redis else lambda: cache.get("bench-round-trip")

    def __call__(self, request):
        self.cache_round_trip()
        response = self.get_response(request)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return response


TARGET = ("<=", 1.5)  # issue 15: the production stack at most 1.5x the floor (median us/req)
REQUESTS_PER_ROUND = int(os.environ.get("BENCH_REQUESTS", "400"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
WITHOUT_AUDIT = [m for m in settings.MIDDLEWARE if m != "audit.middleware.AccessLogMiddleware"]
FLOOR = "floor (no audit, no rate limit)"
PRODUCTION = "+ both (production stack)"
STOCK_HEALTH_CHECK = "(production, stock SELECT 1 check)"
VARIANTS = {
    FLOOR: {"MIDDLEWARE": WITHOUT_AUDIT, "RATELIMIT_ENABLE": False},
    "+ access-log write": {"MIDDLEWARE": settings.MIDDLEWARE, "RATELIMIT_ENABLE": False},
    "+ rate-limit check": {"MIDDLEWARE": WITHOUT_AUDIT, "RATELIMIT_ENABLE": True},
    PRODUCTION: {"MIDDLEWARE": settings.MIDDLEWARE, "RATELIMIT_ENABLE": True},
    "(floor + 2 bare round trips)": {
        "MIDDLEWARE": [
            f"{__name__}.BareRoundTrips" if m == "audit.middleware.AccessLogMiddleware" else m
            for m in settings.MIDDLEWARE
        ],
        "RATELIMIT_ENABLE": False,
    },
    STOCK_HEALTH_CHECK: {"MIDDLEWARE": settings.MIDDLEWARE, "RATELIMIT_ENABLE": True},
}


@contextmanager
def stock_health_check(name: str):
    """For STOCK_HEALTH_CHECK only: the default connection checks itself as Django's own PostgreSQL backend does
    (SELECT 1 on the first query of every request), for comparison in the same run."""
    wrapper = connections["default"]
    if name != STOCK_HEALTH_CHECK or connection.vendor != "postgresql":
        yield
        return
    from django.db.backends.postgresql.base import DatabaseWrapper as StockWrapper

    wrapper.close_if_health_check_failed = StockWrapper.close_if_health_check_failed.__get__(wrapper)
    try:
        yield
    finally:
        del wrapper.close_if_health_check_failed


# The per-address limit (60 a minute) counts in Redis across runs: runs back to back within a minute would
# otherwise meet their predecessor's counts on the same addresses and be refused (429).
RUN_OCTET = secrets.randbelow(256)


class Requests:
    """GET /api/v1/bench through Django's WSGI handler, as gunicorn calls it: request_started and
    request_finished fire (close_old_connections: the connection's age and health check), the body is read
    and the response closed. Each request has its own client address, so the per-IP limit (60/min) never trips
    and every request pays the full check."""

    def __init__(self):
        self.handler = WSGIHandler()
        self.environ = RequestFactory()._base_environ(PATH_INFO="/api/v1/bench", REQUEST_METHOD="GET")
        self.statuses = []

    def _start_response(self, status, headers, exc_info=None):
        self.statuses.append(status)

    def get(self, i: int) -> None:
        environ = {
            **self.environ,
            "REMOTE_ADDR": f"10.{RUN_OCTET}.{i // 256 % 256}.{i % 256}",
            "wsgi.input": io.BytesIO(),
        }
        response = self.handler(environ, self._start_response)
        try:
            b"".join(response)
        finally:
            response.close()  # request_finished
        status = self.statuses.pop()
        assert status.startswith("200"), (status, response.content)


def _backend() -> tuple[int, float] | None:
    """The PostgreSQL server process serving this connection and the CPU seconds it has used so far (Linux, a
    server on this host); None when it cannot be read."""
    if connection.vendor != "postgresql" or connection.connection is None:
        return None
    pid = connection.connection.info.backend_pid
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return pid, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_round(name: str) -> tuple[float, float, float | None]:
    """Mean wall and CPU microseconds per request over one round, and the PostgreSQL server process's CPU seconds
    spent on the round (None when it cannot be read or the connection changed)."""
    with override_settings(ROOT_URLCONF=__name__, **VARIANTS[name]), stock_health_check(name):
        requests = Requests()
        requests.get(0)  # warm
        backend_started = _backend()
        cpu_started, started = time.process_time(), time.perf_counter()
        for i in range(REQUESTS_PER_ROUND):
            requests.get(i)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        backend_ended = _backend()
        server = None
        if backend_started and backend_ended and backend_started[0] == backend_ended[0]:
            server = backend_ended[1] - backend_started[1]
        return wall / REQUESTS_PER_ROUND * 1e6, cpu / REQUESTS_PER_ROUND * 1e6, server


@contextmanager
def counting_round_trips():
    """Counts round trips from this process: PostgreSQL, each time psycopg waits for the server's answer to
    what it sent (one per statement outside pipeline mode, connection setup included); Redis, each packed
    command sent (a pipeline or a script call is one)."""
    counts = {"postgresql": 0, "redis": 0}
    patches = []
    try:
        import psycopg

        original_wait = psycopg.Connection.wait

        def wait(self, *args, **kwargs):
            counts["postgresql"] += 1
            return original_wait(self, *args, **kwargs)

        patches.append((psycopg.Connection, "wait", original_wait))
        psycopg.Connection.wait = wait
    except ImportError:
        pass
    try:
        from redis.connection import AbstractConnection

        original_send = AbstractConnection.send_packed_command

        def send_packed_command(self, *args, **kwargs):
            counts["redis"] += 1
            return original_send(self, *args, **kwargs)

        patches.append((AbstractConnection, "send_packed_command", original_send))
        AbstractConnection.send_packed_command = send_packed_command
    except ImportError:
        pass
    try:
        yield counts
    finally:
        for owner, attribute, original in patches:
            setattr(owner, attribute, original)


def counted_per_request(name: str, n: int = 50) -> tuple[float, float, float]:
    """Untimed: PostgreSQL and Redis round trips per request of a variant (SQLite has none to count), and the
    Python and C function calls made per request (sys.setprofile): figures no other load on the machine moves."""
    with override_settings(ROOT_URLCONF=__name__, **VARIANTS[name]), stock_health_check(name):
        requests = Requests()
        requests.get(0)
        with counting_round_trips() as counts:
            for i in range(1, n + 1):
                requests.get(i)
        calls = 0

        def count_calls(_frame, event, _arg):
            nonlocal calls
            if event in ("call", "c_call"):
                calls += 1

        sys.setprofile(count_calls)
        try:
            for i in range(n + 1, 2 * n + 1):
                requests.get(i)
        finally:
            sys.setprofile(None)
    return counts["postgresql"] / n, counts["redis"] / n, calls / n


def bare_round_trips() -> dict[str, tuple[float, float]]:
    """Wall and CPU us of one bare round trip each, timed in this run: Redis PING on the cache's connection,
    and SELECT 1 on the database connection through psycopg directly (no Django cursor)."""
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    cache = caches["default"]
    results = {}
    if isinstance(cache, RedisCache):
        redis = cache._cache.get_client(write=True)
        results["Redis PING"] = timed(lambda _i: redis.ping())
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        raw = connection.connection

        def select_one(_i):
            with raw.cursor() as cursor:
                cursor.execute("SELECT 1")

        results["PostgreSQL SELECT 1"] = timed(select_one)
    return results


def timed(fn, n: int = REQUESTS_PER_ROUND) -> tuple[float, float]:
    fn(0)
    cpu_started, started = time.process_time(), time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - started) / n * 1e6, (time.process_time() - cpu_started) / n * 1e6


def per_call_us(fn, n: int = REQUESTS_PER_ROUND) -> float:
    started = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - started) / n * 1e6


def mechanism_table() -> None:
    """Each mechanism alone against the bare operation it cannot do without (its floor)."""
    import json

    from django.core.cache import cache
    from django.test import RequestFactory

    from audit.services import access_log_record
    from core import ratelimit
    from core.apis import MARK_RATES
    from core.time import utc_now

    fields = dict(
        created_at=utc_now(),
        api="mark",
        actor_type="user",
        actor_id="1",
        on_behalf_of="",
        organization_id="",
        method="GET",
        path="/api/v1/bench",
        subject_ids=["patient:pat_x"],
        status_code=200,
        reason="",
        ip="10.0.0.1",
        user_agent="bench",
        request_id="r" * 32,
        duration_ms=1,
    )
    columns = ", ".join(f'"{name}"' for name in fields)
    insert = f'INSERT INTO "audit_accesslog" ({columns}) VALUES ({", ".join(["%s"] * len(fields))})'
    if connection.vendor == "postgresql":
        # The same INSERT committed asynchronously, as a read's row is (audit.services.access_log_record).
        insert_asynchronous = insert.replace(" VALUES (", " SELECT ").removesuffix(")") + (
            " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS asynchronous_commit"
        )
    else:
        insert_asynchronous = insert  # SQLite: one kind of commit
    params = [json.dumps(v) if isinstance(v, list) else v for v in fields.values()]
    factory = RequestFactory()

    def raw_insert(statement):
        def run(_i):
            with connection.cursor() as cursor:
                cursor.execute(statement, params)

        return run

    def enforce(i):
        request = factory.get("/api/v1/bench", REMOTE_ADDR=f"10.1.{i // 256 % 256}.{i % 256}")
        ratelimit.enforce(request, MARK_RATES, ratelimit.Stage.BEFORE_AUTH)

    def raw_count(i):
        cache.add(f"bench-floor-{time.time_ns()}-{i}", 1, 60)  # a new key: one SET NX on Redis

    rows = {
        "access-log write, a read's": ([], []),
        "access-log write, a write's": ([], []),
        "rate-limit check": ([], []),
    }
    with override_settings(RATELIMIT_ENABLE=True):
        for _ in range(ROUNDS):
            rows["access-log write, a read's"][0].append(
                per_call_us(lambda _i: access_log_record(durable=False, **fields))
            )
            rows["access-log write, a read's"][1].append(per_call_us(raw_insert(insert_asynchronous)))
            rows["access-log write, a write's"][0].append(per_call_us(lambda _i: access_log_record(**fields)))
            rows["access-log write, a write's"][1].append(per_call_us(raw_insert(insert)))
            rows["rate-limit check"][0].append(per_call_us(enforce))
            rows["rate-limit check"][1].append(per_call_us(raw_count))
    print()
    print(f"{'mechanism alone':34} {'median us':>14} {'floor us':>12} {'ratio to floor':>15}   floor")
    floors = {
        "access-log write, a read's": "one parametrized INSERT, asynchronous commit (PostgreSQL)",
        "access-log write, a write's": "one parametrized INSERT, autocommit",
        "rate-limit check": "one cache add of a new key (one round trip)",
    }
    for name, (values, floor_values) in rows.items():
        value, floor = statistics.median(values), statistics.median(floor_values)
        print(f"{name:34} {value:14.1f} {floor:12.1f} {value / floor:15.2f}   {floors[name]}")


def main() -> None:
    call_command("migrate", verbosity=0)
    cache = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    print(
        f"database: {connection.vendor} ({settings.DATABASES['default']['ENGINE']})   cache: {cache}   "
        f"{ROUNDS} rounds x {REQUESTS_PER_ROUND} requests per variant, through Django's WSGI handler"
    )
    names = [name for name in VARIANTS if name != STOCK_HEALTH_CHECK or connection.vendor == "postgresql"]
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    # PostgreSQL server CPU over all rounds (its clock ticks are 10 ms: summed, not a median per round).
    server_seconds: dict[str, float] = dict.fromkeys(names, 0.0)
    server_requests: dict[str, int] = dict.fromkeys(names, 0)
    bare: dict[str, list[tuple[float, float]]] = {}
    for round_number in range(ROUNDS):
        # Rotate the order each round so no variant always runs first (cold) or last.
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            round_wall, round_cpu, round_server = run_round(name)
            wall[name].append(round_wall)
            cpu[name].append(round_cpu)
            if round_server is not None:
                server_seconds[name] += round_server
                server_requests[name] += REQUESTS_PER_ROUND
        for name, figures in bare_round_trips().items():
            bare.setdefault(name, []).append(figures)
    trips = {name: counted_per_request(name) for name in names}
    floor, floor_cpu = statistics.median(wall[FLOOR]), statistics.median(cpu[FLOOR])
    print(
        f"{'variant':36} {'median us/req':>13} {'spread':>15} {'overhead':>9} {'ratio':>6} "
        f"{'CPU us/req':>10} {'CPU ratio':>9} {'PG trips':>8} {'Redis trips':>11} {'calls/req':>9} {'PG CPU us':>9}"
    )
    for name in names:
        median, median_cpu = statistics.median(wall[name]), statistics.median(cpu[name])
        spread = f"{min(wall[name]):.0f}-{max(wall[name]):.0f}"
        server = f"{server_seconds[name] / server_requests[name] * 1e6:9.0f}" if server_requests[name] else f"{'-':>9}"
        print(
            f"{name:36} {median:13.1f} {spread:>15} {median - floor:9.1f} {median / floor:6.2f} "
            f"{median_cpu:10.1f} {median_cpu / floor_cpu:9.2f} {trips[name][0]:8.2f} {trips[name][1]:11.2f} "
            f"{trips[name][2]:9.0f} {server}"
        )
    print(
        "PG CPU us: the PostgreSQL server process's CPU per request over all rounds (the work a round trip waits for)"
    )
    production = statistics.median(wall[PRODUCTION])
    if bare:
        print()
        print(f"{'one bare round trip, same run':36} {'median us':>13} {'CPU us':>10}")
        floor_plus = floor
        for name, figures in bare.items():
            bare_wall = statistics.median(f[0] for f in figures)
            bare_cpu = statistics.median(f[1] for f in figures)
            print(f"{name:36} {bare_wall:13.1f} {bare_cpu:10.1f}")
            floor_plus += bare_wall * (trips[PRODUCTION][0] if "PostgreSQL" in name else trips[PRODUCTION][1])
        print(
            f"floor + the production stack's round trips at the bare cost: {floor_plus:.1f} us/req "
            f"(x{floor_plus / floor:.2f} the floor); the production stack is x{production / floor_plus:.2f} that"
        )
    mechanism_table()
    print()
    report("request_overhead", production / floor, *TARGET)


if __name__ == "__main__":
    main()
