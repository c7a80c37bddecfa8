"""How core.ratelimit counts (issue 15): one round trip to Redis per stage whatever its number of limits, fixed
windows with an expiry on every counter, a refused request spending no budget after the limit that refused it,
exact under concurrency, and the store down answered 503 unless every limit of the stage may fail open. The same
rules hold on the local-memory cache (development without Redis)."""

from __future__ import annotations

import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from django.core.cache import caches
from django.test import RequestFactory

from core.errors import ApiError
from core.ratelimit import EXPIRY_MARGIN_SECONDS, UNAVAILABLE_RETRY_AFTER, Rate, RatePolicy, Stage, enforce

pytestmark = pytest.mark.usefixtures("frozen_ratelimit_clock")

MINUTE, HOUR = 60, 3600


def _key_of_client(request) -> str:
    return f"client:{request.META['HTTP_X_CLIENT']}"


def _request(client: str = "c1"):
    return RequestFactory().get("/api/v1/anything", HTTP_X_CLIENT=client)


def _policy(name: str, *rates: tuple[str, int, int], fail_open: bool = False) -> RatePolicy:
    return RatePolicy(
        name,
        tuple(
            Rate(rate_name, limit, period, _key_of_client, Stage.AFTER_AUTH, fail_open=fail_open)
            for rate_name, limit, period in rates
        ),
    )


def _count(policy: RatePolicy, client: str = "c1"):
    """One request against the policy: its status (200 or the ApiError's) and the usage it reports."""
    request = _request(client)
    try:
        enforce(request, policy, Stage.AFTER_AUTH)
    except ApiError as error:
        return error.status, getattr(request, "ratelimit_usage", None)
    return 200, getattr(request, "ratelimit_usage", None)


@pytest.fixture(params=["redis", "locmem"])
def store(request, settings):
    """The counters' store, each test on its own key prefix: Redis as in production, local memory as in
    development."""
    prefix = f"test-rlc-{uuid.uuid4().hex}"
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        backend = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    else:
        backend = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": prefix}
    settings.CACHES = {"default": {**backend, "KEY_PREFIX": prefix}}
    settings.RATELIMIT_ENABLE = True
    return request.param


@pytest.fixture
def redis_store(settings, redis_url):
    """Redis only: the counters' store and a client of its own to look at the counters."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": f"test-rlc-{uuid.uuid4().hex}",
        }
    }
    settings.RATELIMIT_ENABLE = True
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def round_trips(monkeypatch):
    """Counts what this process sends to Redis: one `send_packed_command` per round trip (a pipeline or a
    script call is one)."""
    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return sent


def test_the_tightest_of_two_limits_is_reported_and_exhausted(store):
    policy = _policy("two", ("minute", 5, MINUTE), ("hour", 3, HOUR))
    results = [_count(policy) for _ in range(4)]
    assert [status for status, _ in results] == [200, 200, 200, 429]
    assert [(usage.limit, usage.remaining) for _, usage in results] == [(3, 2), (3, 1), (3, 0), (3, 0)]
    assert results[3][1].limited
    assert _count(policy, client="c2")[0] == 200  # another client, its own counters


def test_a_refused_request_spends_no_budget_of_the_limits_after_the_one_that_refused_it(store):
    _count(_policy("order", ("first", 2, MINUTE), ("second", 10, MINUTE)))
    _count(_policy("order", ("first", 2, MINUTE), ("second", 10, MINUTE)))
    statuses = [_count(_policy("order", ("first", 2, MINUTE), ("second", 10, MINUTE)))[0] for _ in range(3)]
    assert statuses == [429, 429, 429]
    # The same counter ("order:second") on its own: counted by the two requests that passed "first" only.
    status, usage = _count(_policy("order", ("second", 10, MINUTE)))
    assert (status, usage.remaining) == (200, 10 - 3)


@pytest.mark.parametrize("seconds_left", [0, 1, 30, 59])
def test_headers_values_reset_at_the_end_of_the_window(store, frozen_ratelimit_clock, seconds_left):
    # The window's last second is T (the counted value's crc32 offset): a request `seconds_left` before it.
    # 0 is the case that once flaked (about 1 run in 60): a window ending this very second.
    now = int(frozen_ratelimit_clock.now)
    last_second = now - now % MINUTE + zlib.crc32(b"client:c1") % MINUTE + MINUTE
    frozen_ratelimit_clock.now = last_second - seconds_left
    status, usage = _count(_policy("reset", ("minute", 10, MINUTE)))
    assert status == 200
    assert usage.reset_at == last_second + 1  # the first second of the next window
    assert usage.retry_after == seconds_left + 1
    frozen_ratelimit_clock.now = usage.reset_at - 1  # still this window
    assert _count(_policy("reset", ("minute", 10, MINUTE)))[1].remaining == 8
    frozen_ratelimit_clock.now = usage.reset_at  # the next window: retrying at the reset time is counted anew
    assert _count(_policy("reset", ("minute", 10, MINUTE)))[1].remaining == 9


@pytest.mark.redis
def test_a_stage_is_one_round_trip_to_redis_whatever_its_limits(redis_store, round_trips):
    three = _policy("trips", ("a", 100, MINUTE), ("b", 100, HOUR), ("c", 100, 24 * HOUR))
    _count(three)  # the first call may load the script (NOSCRIPT, SCRIPT LOAD, EVALSHA)
    round_trips.clear()
    for _ in range(5):
        assert _count(three)[0] == 200
    assert len(round_trips) == 5


@pytest.mark.redis
def test_every_counter_has_its_window_s_expiry(redis_store):
    _count(_policy("expiry", ("minute", 100, MINUTE), ("hour", 100, HOUR)))
    prefix = caches["default"].key_prefix
    ttls = sorted(redis_store.ttl(key) for key in redis_store.scan_iter(match=f"{prefix}:*"))
    assert len(ttls) == 2
    assert MINUTE < ttls[0] <= MINUTE + EXPIRY_MARGIN_SECONDS
    assert HOUR < ttls[1] <= HOUR + EXPIRY_MARGIN_SECONDS


@pytest.mark.redis
def test_a_counter_left_without_expiry_gets_one(redis_store):
    # A counter some other writer created without an expiry would never reset: the next count gives it one.
    _count(_policy("persist", ("minute", 100, MINUTE)))
    prefix = caches["default"].key_prefix
    [key] = redis_store.scan_iter(match=f"{prefix}:*")
    redis_store.persist(key)
    assert redis_store.ttl(key) == -1
    assert _count(_policy("persist", ("minute", 100, MINUTE)))[1].remaining == 98
    assert MINUTE < redis_store.ttl(key) <= MINUTE + EXPIRY_MARGIN_SECONDS


def test_threads_hammering_one_counter_pass_exactly_the_limit(store):
    policy = _policy("hammer", ("minute", 50, MINUTE))
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: _count(policy), range(200)))
    statuses = [status for status, _ in results]
    assert statuses.count(200) == 50
    assert statuses.count(429) == 150
    assert sorted(usage.remaining for status, usage in results if status == 200) == list(range(50))


# --- The store down ------------------------------------------------------------------------------------------


@pytest.fixture
def redis_down(settings):
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    settings.RATELIMIT_ENABLE = True


def test_redis_down_answers_503_and_counts_nothing(redis_down):
    status, usage = _count(_policy("down", ("minute", 10, MINUTE)))
    assert (status, usage) == (503, None)
    request = _request()
    with pytest.raises(ApiError) as raised:
        enforce(request, _policy("down", ("minute", 10, MINUTE)), Stage.AFTER_AUTH)
    assert raised.value.headers == {"Retry-After": str(UNAVAILABLE_RETRY_AFTER)}


def test_redis_down_lets_a_stage_of_fail_open_limits_through_uncounted(redis_down):
    assert _count(_policy("open", ("minute", 10, MINUTE), ("hour", 100, HOUR), fail_open=True)) == (200, None)


def test_redis_down_one_fail_closed_limit_in_the_stage_is_enough_for_503(redis_down):
    mixed = RatePolicy(
        "mixed",
        (
            Rate("open", 10, MINUTE, _key_of_client, Stage.AFTER_AUTH, fail_open=True),
            Rate("closed", 10, MINUTE, _key_of_client, Stage.AFTER_AUTH),
        ),
    )
    assert _count(mixed)[0] == 503


def test_disabled_rate_limiting_touches_no_store(redis_down, settings):
    settings.RATELIMIT_ENABLE = False
    assert _count(_policy("off", ("minute", 1, MINUTE))) == (200, None)


# --- The failed-authentication guard's read (every authenticated request) ------------------------------------


def test_the_guard_reads_what_the_cache_wrote(store):
    """core.ratelimit._cache_get_many (the guard's read, through the limiter's own Redis client) returns what
    Django's cache.get_many would, for the counters the guard writes and any other value."""
    from core.ratelimit import _cache_get_many

    cache = caches["default"]
    cache.add("authfail:t:ip:a:1", 0, 60)
    cache.incr("authfail:t:ip:a:1")
    cache.incr("authfail:t:ip:a:1")
    cache.set("authfail:t:known:b:c", 1, 60)
    cache.set("other", {"a": [1, "x"]}, 60)
    keys = ["authfail:t:ip:a:1", "authfail:t:known:b:c", "other", "missing"]
    expected = {"authfail:t:ip:a:1": 2, "authfail:t:known:b:c": 1, "other": {"a": [1, "x"]}}
    assert _cache_get_many(cache, keys) == cache.get_many(keys) == expected


def test_an_authenticated_request_s_guard_builds_no_redis_client(redis_store, monkeypatch):
    """Django's RedisCache builds a new client for each call (more CPU than the round trip); the guard's read on
    every authenticated request uses the rate limiter's one client: one round trip, no client built."""
    from core.apis import MARK_FAILURES
    from core.ratelimit import _redis_client, failure_guard

    cache = caches["default"]
    _redis_client(cache)  # the limiter's client exists (the request's BEFORE_AUTH stage made it)
    built = []
    original = cache._cache.get_client
    monkeypatch.setattr(cache._cache, "get_client", lambda *a, **k: built.append(1) or original(*a, **k))
    with failure_guard(_request(), MARK_FAILURES):
        pass  # credentials accepted
    assert built == []


def test_a_credential_naming_an_account_costs_one_round_trip_for_its_address_and_account(redis_store, round_trips):
    """With `claims_first`, the guard reads the address's failures with the claimed account's (issue 15): one round
    trip to Redis for both; a block that claims nothing reads the address as it ends."""
    from core.apis import CAREOS_FAILURES
    from core.ratelimit import _redis_client, claim_account, failure_guard

    _redis_client(caches["default"])
    for _warm_up in range(2):  # the limiter's connection is made; the account's address becomes a known one
        round_trips.clear()
        request = _request()
        with failure_guard(request, CAREOS_FAILURES, claims_first=True):
            claim_account(request, "platform:businessos")
    assert len(round_trips) == 1 and round_trips[0][0].startswith(b"*4\r\n$4\r\nMGET")  # address, account, known
    round_trips.clear()
    with failure_guard(_request(), CAREOS_FAILURES, claims_first=True):
        pass
    assert len(round_trips) == 1 and round_trips[0][0].startswith(b"*2\r\n$4\r\nMGET")  # the address alone
    # A check that does not claim first has its address read before anything: two reads with a claim.
    round_trips.clear()
    request = _request()
    with failure_guard(request, CAREOS_FAILURES):
        assert len(round_trips) == 1
        claim_account(request, "platform:businessos")
    assert len(round_trips) == 2
