"""Issue 15: the rate limiter sends its commands (a stage's script, the failed-authentication guard's read) on one
connection of the cache's pool that it keeps, without redis-py's per-command client machinery, and still recovers
as redis-py would: a connection the server closed is replaced before the next command, a script the server has
forgotten is sent again, and counting stays exact."""

from __future__ import annotations

import uuid

import pytest
import redis
from django.core.cache import caches
from django.test import RequestFactory

from core.ratelimit import Rate, RatePolicy, Stage, _cache_get_many, _limiter_connection, enforce

pytestmark = pytest.mark.redis

MINUTE = 60


@pytest.fixture
def store(settings, redis_url, frozen_ratelimit_clock):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": f"test-rlconn-{uuid.uuid4().hex}",
        }
    }
    settings.RATELIMIT_ENABLE = True
    return redis.Redis.from_url(redis_url)


def _policy(limit: int = 5) -> RatePolicy:
    return RatePolicy("conn", (Rate("minute", limit, MINUTE, lambda request: "client:c1", Stage.AFTER_AUTH),))


def _remaining(policy: RatePolicy) -> int:
    request = RequestFactory().get("/api/v1/anything")
    enforce(request, policy, Stage.AFTER_AUTH)
    return request.ratelimit_usage.remaining


def test_a_stage_goes_through_no_redis_client_command(store, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"redis-py client command {args[1:2]}")

    cache = caches["default"]
    cache.set("guard-key", 7, 60)  # written through Django's cache (its own client), read by the guard's path
    monkeypatch.setattr(redis.Redis, "execute_command", refuse)
    assert [_remaining(_policy()) for _ in range(3)] == [4, 3, 2]
    assert _cache_get_many(cache, ["guard-key", "missing"]) == {"guard-key": 7}


def test_one_kept_connection_for_every_command(store):
    cache = caches["default"]
    _remaining(_policy())
    limiter = _limiter_connection(cache)
    connection = limiter.connection
    _remaining(_policy())
    _cache_get_many(cache, ["a", "b"])
    assert limiter.connection is connection and connection._sock is not None


def test_a_connection_the_server_closed_is_replaced_before_the_next_command(store):
    cache = caches["default"]
    assert _remaining(_policy()) == 4
    limiter = _limiter_connection(cache)
    old_socket = limiter.connection._sock
    client_id = limiter.call("CLIENT", "ID")
    assert store.client_kill_filter(_id=client_id) == 1  # as a Redis restart or an idle timeout would
    # No 503, no lost or doubled count: the closed connection is seen before sending and replaced.
    assert [_remaining(_policy()) for _ in range(2)] == [3, 2]
    assert limiter.connection._sock is not old_socket


def test_a_script_the_server_does_not_know_is_sent_again(store, monkeypatch):
    from core import ratelimit

    assert _remaining(_policy()) == 4
    # A digest the server has never seen, as after a Redis restart or failover emptied its script cache (without
    # flushing the scripts of everyone else using this server).
    monkeypatch.setattr(ratelimit._INCREMENT_SCRIPT, "sha", "0" * 40)
    assert [_remaining(_policy()) for _ in range(2)] == [3, 2]


def test_the_limit_is_still_exact_past_its_end(store):
    from core.errors import ApiError

    policy = _policy(limit=2)
    assert [_remaining(policy) for _ in range(2)] == [1, 0]
    with pytest.raises(ApiError) as refused:
        _remaining(policy)
    assert refused.value.status == 429
