"""Per-request cost of the access-log write and the rate-limit check, next to their floor.

The floor is the same API view (a precomputed body, no database work) through the same middleware
stack with the access log removed and rate limiting disabled; each variant adds one mechanism back. A last,
reference line adds only two bare round trips (a Redis PING before the view, a SELECT 1 after it): the least
any rate limit checked before the view plus a row written before the answer can cost.
Variants run interleaved in rounds, so drift on the machine hits them all alike.

    make bench                                   # SQLite + local-memory cache
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python bench/request_overhead.py  # PostgreSQL + Redis, as in production
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("APP_ENV", "test")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
if "DATABASE_URL" not in os.environ:
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
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
VARIANTS = {
    "floor (no audit, no rate limit)": {"MIDDLEWARE": WITHOUT_AUDIT, "RATELIMIT_ENABLE": False},
    "+ access-log write": {"MIDDLEWARE": settings.MIDDLEWARE, "RATELIMIT_ENABLE": False},
    "+ rate-limit check": {"MIDDLEWARE": WITHOUT_AUDIT, "RATELIMIT_ENABLE": True},
    "+ both (production stack)": {"MIDDLEWARE": settings.MIDDLEWARE, "RATELIMIT_ENABLE": True},
    "(floor + 2 bare round trips)": {
        "MIDDLEWARE": [
            f"{__name__}.BareRoundTrips" if m == "audit.middleware.AccessLogMiddleware" else m
            for m in settings.MIDDLEWARE
        ],
        "RATELIMIT_ENABLE": False,
    },
}


def run_round(overrides: dict) -> float:
    """Mean microseconds per request over one round. Each request has its own client address, so the
    per-IP limit (60/min) never trips and every request pays the full check."""
    with override_settings(ROOT_URLCONF=__name__, **overrides):
        client = Client()
        client.get("/api/v1/bench")  # warm
        started = time.perf_counter()
        for i in range(REQUESTS_PER_ROUND):
            response = client.get("/api/v1/bench", REMOTE_ADDR=f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}")
            assert response.status_code == 200, response.content
        return (time.perf_counter() - started) / REQUESTS_PER_ROUND * 1e6


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
        f"database: {connection.vendor}   cache: {cache}   "
        f"{ROUNDS} rounds x {REQUESTS_PER_ROUND} requests per variant, in-process client"
    )
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    order = list(VARIANTS)
    for round_number in range(ROUNDS):
        # Rotate the order each round so no variant always runs first (cold) or last.
        shift = round_number % len(order)
        for name in order[shift:] + order[:shift]:
            samples[name].append(run_round(VARIANTS[name]))
    floor = statistics.median(samples["floor (no audit, no rate limit)"])
    print(f"{'variant':34} {'median us/req':>14} {'overhead us':>12} {'ratio to floor':>15}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:34} {median:14.1f} {median - floor:12.1f} {median / floor:15.2f}")
    mechanism_table()
    production = statistics.median(samples["+ both (production stack)"])
    print()
    report("request_overhead", production / floor, *TARGET)


if __name__ == "__main__":
    main()
