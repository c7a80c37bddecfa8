"""A shared request budget: at most `limit` requests per `window_seconds` per key, across processes.

Used to keep outbound calls under a vendor's rate limit (Cliniko: 200 requests per minute per user) when
many workers call it with the same credential:

    budget = RequestBudget("cliniko", limit=200, window_seconds=60)
    budget.acquire(api_key)          # blocks until a slot is free, then counts this request
    response = call_the_vendor()

**Algorithm.** A sliding-window log: each granted request is a member of a sorted set scored by its time;
a request is granted when fewer than `limit` members are younger than `window_seconds`, otherwise the
caller learns when the oldest one leaves the window and waits that long. Unlike fixed windows, this never
lets 2 x limit requests through around a window boundary, so it also stays under a vendor that counts in
fixed windows. `block(key, seconds)` pauses every holder of the key (a vendor 429 seen by one worker
stops all of them until the vendor's reset time).

**Shared (Redis).** With a Redis URL (default: settings.REDIS_URL) the check-and-count is ONE Lua script
(`EVALSHA` through redis-py's `register_script`), atomic in Redis, so any number of processes and hosts
share one budget per key. Members carry the caller's clock (time.time by default): processes on hosts
whose clocks disagree by d seconds may drift by d in the window edges (NTP keeps that far below a second).
The sorted set expires one window after its last request, so idle keys leave nothing behind.

**In-process fallback (no Redis).** Without a Redis URL the same algorithm runs on a dict under a
`threading.Lock`: correct between threads of ONE process only. Two worker processes each get the full
limit, so the vendor may answer 429 (which callers must handle anyway). This is the embedded
development default, never production (which requires REDIS_URL). If Redis is configured but fails
mid-call, `acquire` logs a warning and counts in-process for REDIS_RETRY_SECONDS rather than stopping
the work: the vendor's own limit (and 429 handling) remains the backstop.

**Keys are hashed.** The key (an API key, typically) is never stored: Redis holds
`request-budget:<name>:<sha256(key)[:32]>`, and nothing here logs it.

Clock and sleep are injectable (`clock`, `sleep`) so tests never depend on wall-clock luck.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger("core.request_budget")

Clock = Callable[[], float]
# After a Redis failure, count in-process for this long before trying Redis again (each failed attempt
# costs up to the connect timeout).
REDIS_RETRY_SECONDS = 30
Sleep = Callable[[float], None]

# KEYS[1] the log (sorted set), KEYS[2] the block marker (string holding "blocked until" in clock time).
# ARGV: now, window, limit, unique member. Returns {granted (1/0), seconds to wait as a string}: Lua
# numbers become integers in Redis replies, so fractions travel as text.
_ACQUIRE_LUA = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if blocked > now then
  return {0, tostring(blocked - now)}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
  return {1, '0'}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = tonumber(oldest[2]) + window - now
if wait < 0.001 then wait = 0.001 end
return {0, tostring(wait)}
"""

# KEYS[1] the block marker; ARGV: until (clock time), ttl milliseconds. Only ever moves the block later.
_BLOCK_LUA = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local until_ = tonumber(ARGV[1])
if until_ > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"""


class BudgetExhausted(Exception):
    """No slot within the caller's `timeout`; `retry_after` says how long until one may be free."""

    def __init__(self, retry_after: float):
        super().__init__(f"request budget exhausted, retry after {retry_after:.2f}s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Attempt:
    granted: bool
    wait: float  # seconds until a slot may be free (0 when granted)


def hashed_key(name: str, key: str) -> str:
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"request-budget:{name}:{digest}"


class _LocalStore:
    """The in-process budget: per-key deques of grant times under one lock (see the module docstring)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._logs: dict[str, deque[float]] = {}
        self._blocked: dict[str, float] = {}

    def try_acquire(self, key: str, now: float, window: float, limit: int) -> Attempt:
        with self._lock:
            blocked = self._blocked.get(key, 0.0)
            if blocked > now:
                return Attempt(False, blocked - now)
            log = self._logs.setdefault(key, deque())
            while log and log[0] <= now - window:
                log.popleft()
            if len(log) < limit:
                log.append(now)
                return Attempt(True, 0.0)
            return Attempt(False, max(0.001, log[0] + window - now))

    def block(self, key: str, until: float) -> None:
        with self._lock:
            if until > self._blocked.get(key, 0.0):
                self._blocked[key] = until


# One in-process store per process: every RequestBudget without Redis shares it, so two clients of the
# same key in one process share one budget.
_LOCAL = _LocalStore()
_CLIENTS: dict[str, object] = {}
_CLIENTS_LOCK = threading.Lock()


def _redis_client(url: str):
    """One redis-py client (and connection pool) per URL per process."""
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(url)
        if client is None:
            import redis

            client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
            _CLIENTS[url] = client
        return client


def _default_redis_url() -> str:
    try:
        from django.conf import settings

        return getattr(settings, "REDIS_URL", "") or ""
    except Exception:  # settings not configured (plain scripts): no Redis
        return ""


class RequestBudget:
    """At most `limit` grants per `window_seconds` per key; see the module docstring.

    `redis_url`: None reads settings.REDIS_URL; "" forces the in-process store. `max_wait` caps a single
    sleep (the loop re-checks after it), so a long block is waited out in bounded steps.
    """

    def __init__(
        self,
        name: str,
        *,
        limit: int,
        window_seconds: float,
        redis_url: str | None = None,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
        max_sleep: float = 5.0,
    ):
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        if not name or ":" in name:
            raise ValueError("name must be non-empty and contain no ':'")
        self.name = name
        self.limit = int(limit)
        self.window = float(window_seconds)
        self.clock = clock
        self.sleep = sleep
        self.max_sleep = max_sleep
        self.redis_url = _default_redis_url() if redis_url is None else redis_url
        self._acquire_script = None
        self._block_script = None
        self._redis_down_until = float("-inf")
        if self.redis_url:
            client = _redis_client(self.redis_url)
            self._acquire_script = client.register_script(_ACQUIRE_LUA)
            self._block_script = client.register_script(_BLOCK_LUA)

    @property
    def shared(self) -> bool:
        """True when the budget is held in Redis (shared by processes), False for the in-process store."""
        return self._acquire_script is not None

    def _keys(self, key: str) -> tuple[str, str]:
        base = hashed_key(self.name, key)
        return base, base + ":blocked"

    def try_acquire(self, key: str) -> Attempt:
        """Count one request now if the budget allows it; never waits."""
        now = self.clock()
        if self._acquire_script is not None and now >= self._redis_down_until:
            log_key, block_key = self._keys(key)
            try:
                granted, wait = self._acquire_script(
                    keys=[log_key, block_key], args=[repr(now), repr(self.window), self.limit, uuid.uuid4().hex]
                )
                return Attempt(bool(int(granted)), float(wait))
            except Exception as exc:  # redis.RedisError, OSError: fall back, never stop the work
                self._redis_down_until = now + REDIS_RETRY_SECONDS
                logger.warning(
                    "request budget %s: Redis unavailable (%s), counting in-process for %ds",
                    self.name,
                    type(exc).__name__,
                    REDIS_RETRY_SECONDS,
                )
        return _LOCAL.try_acquire(self._keys(key)[0], now, self.window, self.limit)

    def acquire(self, key: str, *, timeout: float | None = None) -> float:
        """Wait until a slot is free and take it; return the seconds waited (by the injected clock).

        With `timeout`, raise BudgetExhausted instead of waiting past it (chunked tasks reschedule
        themselves rather than outliving their time limit).
        """
        start = self.clock()
        while True:
            attempt = self.try_acquire(key)
            if attempt.granted:
                return max(0.0, self.clock() - start)
            waited = self.clock() - start
            if timeout is not None and waited + attempt.wait > timeout:
                raise BudgetExhausted(attempt.wait)
            self.sleep(min(attempt.wait, self.max_sleep))

    def block(self, key: str, seconds: float) -> None:
        """Grant nothing for this key for `seconds` from now (e.g. the vendor said 429 until its reset)."""
        if seconds <= 0:
            return
        until = self.clock() + seconds
        if self._block_script is not None:
            _, block_key = self._keys(key)
            try:
                self._block_script(keys=[block_key], args=[repr(until), int(seconds * 1000) + 1000])
                return
            except Exception as exc:
                logger.warning(
                    "request budget %s: Redis unavailable (%s), blocking in-process", self.name, type(exc).__name__
                )
        _LOCAL.block(self._keys(key)[0], until)
