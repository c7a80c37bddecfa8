"""Django's Redis cache backend with one redis-py client per connection pool, instead of one per call.

Django's `RedisCacheClient.get_client` builds a new `redis.Redis` on every cache operation. redis-py 8 fills a
table of about 170 response callbacks in each new client, so a `cache.get` cost about 250 us of CPU here, most of
it that constructor: several times the round trip to Redis (issue 15). A client holds no connection of its own
(it takes one from the pool for each command and gives it back), so one client per pool serves every call, from
any thread, as the pool itself does. Django builds one backend per thread, so each thread gets its own client
anyway. Everything else is Django's: the serializer, the key functions, the pools (one per server, created on
first use), timeouts and errors.

    CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": "redis://..."}}
"""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}  # id(pool) -> its client; pools live as long as this object

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
