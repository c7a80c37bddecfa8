"""core.request_budget: the sliding-window budget, in-process and shared through Redis.

Clocks and sleepers are injected (FakeClock), so nothing depends on how fast the machine is. The Redis
tests skip without REDIS_URL locally and fail under CI (tests/conftest.py's redis_url fixture).
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.request_budget import BudgetExhausted, RequestBudget, hashed_key


class FakeClock:
    def __init__(self, start: float = 1_000_000.0):
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def unique_key() -> str:
    return f"api-key-{uuid.uuid4().hex}"


def budget(clock: FakeClock, *, limit: int = 3, window: float = 60, redis_url: str = "", name: str = "test"):
    return RequestBudget(
        name,
        limit=limit,
        window_seconds=window,
        redis_url=redis_url,
        clock=clock.time,
        sleep=clock.sleep,
        max_sleep=1000,
    )


@pytest.fixture(params=["local", "redis"])
def store(request):
    """'' (in-process) or a Redis URL: every behaviour test runs against both stores."""
    if request.param == "local":
        return ""
    return request.getfixturevalue("redis_url")


def test_grants_up_to_the_limit_then_says_how_long_to_wait(store):
    clock, key = FakeClock(), unique_key()
    limiter = budget(clock, limit=3, window=60, redis_url=store)
    assert limiter.shared is bool(store)
    granted = []
    for offset in (0, 10, 20):
        clock.now = 1_000_000.0 + offset
        granted.append(limiter.try_acquire(key).granted)
    assert granted == [True, True, True]
    clock.now = 1_000_030.0
    refused = limiter.try_acquire(key)
    assert not refused.granted and refused.wait == pytest.approx(30.0)  # the first grant leaves at +60
    clock.now = 1_000_060.5  # sliding: one slot (the +0 grant) is free again, not three
    assert limiter.try_acquire(key).granted
    assert not limiter.try_acquire(key).granted


def test_acquire_sleeps_until_a_slot_frees(store):
    clock, key = FakeClock(), unique_key()
    limiter = budget(clock, limit=2, window=60, redis_url=store)
    assert limiter.acquire(key) == 0 and limiter.acquire(key) == 0
    waited = limiter.acquire(key)
    assert waited == pytest.approx(60.0) and sum(clock.sleeps) == pytest.approx(60.0)


def test_acquire_with_a_timeout_raises_instead_of_waiting_past_it(store):
    clock, key = FakeClock(), unique_key()
    limiter = budget(clock, limit=1, window=60, redis_url=store)
    limiter.acquire(key, timeout=1)
    with pytest.raises(BudgetExhausted) as exhausted:
        limiter.acquire(key, timeout=10)
    assert exhausted.value.retry_after == pytest.approx(60.0)
    assert clock.sleeps == []


def test_keys_are_separate(store):
    clock = FakeClock()
    limiter = budget(clock, limit=1, redis_url=store)
    first, second = unique_key(), unique_key()
    assert limiter.try_acquire(first).granted
    assert limiter.try_acquire(second).granted
    assert not limiter.try_acquire(first).granted


def test_block_stops_every_holder_of_the_key_until_it_ends(store):
    clock, key = FakeClock(), unique_key()
    one = budget(clock, limit=100, redis_url=store)
    other = budget(clock, limit=100, redis_url=store)
    one.block(key, 30)
    refused = other.try_acquire(key)
    assert not refused.granted and refused.wait == pytest.approx(30.0)
    assert other.acquire(key) == pytest.approx(30.0)
    one.block(key, 5)
    one.block(key, 2)  # a shorter block never shortens a longer one
    assert other.try_acquire(key).wait == pytest.approx(5.0)


def test_concurrent_callers_never_get_more_than_the_limit(store):
    """Eight threads, each with its own RequestBudget object (like eight workers), race for one key at one
    instant: exactly `limit` are granted. After the window, exactly `limit` again."""
    clock, key = FakeClock(), unique_key()
    limiters = [budget(clock, limit=7, window=60, redis_url=store) for _ in range(8)]
    barrier = threading.Barrier(8)

    def race(limiter):
        barrier.wait()
        return sum(limiter.try_acquire(key).granted for _ in range(10))

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sum(pool.map(race, limiters)) == 7
    clock.now += 60.001
    barrier.reset()
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sum(pool.map(race, limiters)) == 7


@pytest.mark.redis
def test_shared_budget_holds_across_separate_redis_clients(redis_url):
    """Two budgets built on separate connection pools (as two processes would have) share one count."""
    import redis

    from core import request_budget

    clock, key = FakeClock(), unique_key()
    first = budget(clock, limit=5, redis_url=redis_url)
    request_budget._CLIENTS.pop(redis_url, None)  # a fresh client and pool, like another process
    second = budget(clock, limit=5, redis_url=redis_url)
    assert first._acquire_script.registered_client is not second._acquire_script.registered_client
    grants = [limiter.try_acquire(key).granted for limiter in (first, second) * 5]
    assert grants.count(True) == 5
    # The key is hashed: Redis never holds the API key itself, and the log expires with its window.
    connection = redis.Redis.from_url(redis_url)
    stored = hashed_key("test", key)
    assert connection.exists(stored) and key not in stored
    assert not any(key.encode() in name for name in connection.scan_iter(match="request-budget:test:*"))
    assert 0 < connection.pttl(stored) <= 61_000


def test_without_redis_the_budget_is_in_process_and_shared_by_instances():
    clock, key = FakeClock(), unique_key()
    first, second = budget(clock, limit=2), budget(clock, limit=2)
    assert not first.shared
    assert first.try_acquire(key).granted and second.try_acquire(key).granted
    assert not first.try_acquire(key).granted and not second.try_acquire(key).granted


def test_redis_down_falls_back_to_counting_in_process(caplog):
    clock, key = FakeClock(), unique_key()
    limiter = budget(clock, limit=1, redis_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    assert limiter.shared
    with caplog.at_level(logging.WARNING, logger="core.request_budget"):
        assert limiter.try_acquire(key).granted
        assert not limiter.try_acquire(key).granted  # still counted, in-process
    assert "Redis unavailable" in caplog.text and key not in caplog.text


def test_settings_redis_url_is_the_default(settings):
    settings.REDIS_URL = ""
    assert not RequestBudget("x", limit=1, window_seconds=1).shared
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    assert RequestBudget("x", limit=1, window_seconds=1).shared


@pytest.mark.parametrize(
    "kwargs", [{"limit": 0, "window_seconds": 1}, {"limit": 1, "window_seconds": 0}, {"limit": 1, "window_seconds": -1}]
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        RequestBudget("x", redis_url="", **kwargs)
    with pytest.raises(ValueError):
        RequestBudget("a:b", limit=1, window_seconds=1, redis_url="")
