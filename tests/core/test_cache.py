"""core.cache.RedisCache: Django's Redis backend with one redis-py client per pool (issue 15)."""

from __future__ import annotations

import uuid

import pytest
import redis
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.test import override_settings

from core.cache import RedisCache
from tests.conftest import skip_or_fail


@pytest.fixture
def store(redis_url):
    alias = f"cache-{uuid.uuid4().hex[:8]}"
    backends = {
        alias: {"BACKEND": "core.cache.RedisCache", "LOCATION": redis_url, "KEY_PREFIX": alias},
        "django": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url},
    }
    # A key prefix of its own and keys that expire: never `clear()`, which flushes the whole Redis database
    # that the other test worker is using too.
    with override_settings(CACHES={"default": backends[alias], **backends}):
        yield caches[alias]


def _clients_built(monkeypatch) -> list:
    built = []
    original = redis.Redis.__init__

    def counting(self, *args, **kwargs):
        built.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counting)
    return built


def test_one_client_serves_every_call(store, monkeypatch):
    assert isinstance(store, RedisCache) and isinstance(store, DjangoRedisCache)  # the limiter's checks still match
    built = _clients_built(monkeypatch)
    for number in range(20):
        store.set(f"k{number}", number, 60)
        assert store.get(f"k{number}") == number
    assert store.add("counter", 1, 60) and store.incr("counter") == 2
    assert store.get_many(["k1", "k2", "missing"]) == {"k1": 1, "k2": 2}
    store.delete_many(["k1", "k2"])
    assert store.get("k1") is None and store.get("k3") == 3
    assert len(built) == 1  # Django's own backend builds one per operation: 46 here
    assert store._cache.get_client(write=True) is store._cache.get_client(write=False)


def test_django_s_backend_builds_a_client_per_call(store, monkeypatch):
    """What the test above guards against, on the backend it replaces (so that test can fail)."""
    django_backend = caches["django"]
    built = _clients_built(monkeypatch)
    django_backend.set(f"{uuid.uuid4().hex}", 1, 60)
    django_backend.get("absent")
    assert len(built) == 2


def test_values_and_errors_are_django_s(store):
    store.set("obj", {"a": [1, 2]}, 60)
    assert store.get("obj") == {"a": [1, 2]}
    assert store.get("absent", "default") == "default"
    with pytest.raises(ValueError):
        store.incr("absent")


def test_the_configured_cache_is_this_backend_when_redis_is_set(settings):
    if not settings.CACHES["default"]["BACKEND"].endswith("RedisCache"):
        skip_or_fail("needs Redis: set REDIS_URL (without it the default cache is the local-memory one)")
    assert settings.CACHES["default"]["BACKEND"] == "core.cache.RedisCache"
