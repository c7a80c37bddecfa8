"""Rate limiting: per-API policies of fixed-window counters, their headers and the 429.

Counting: one round trip to the counters' store per stage, whatever the number of limits. In Redis (the
default cache when REDIS_URL is set) a small Lua script increments the stage's counters in order, gives a
new counter its expiry, and stops after the first one past its limit, atomically; without Redis (local
development, tests on the local-memory cache) the cache's add + incr do the same one counter at a time.
Windows and counter keys are django-ratelimit's, which counted here before (issue 15), so counters carry
over a deploy. This module chooses the key and rate per request, keeps the most restrictive usage for the
response headers, and raises 429 through the error envelope.

Two stages, because some limits must hold before credentials are checked (per-IP limits also throttle
requests with bad credentials) and others need the authenticated credential (per-key, per-user).

Failed authentication is counted here too (`failure_guard`, `claim_account`): per client address and per
claimed account, in the same cache, with each API's `FailureLimits` declared in core.apis.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisError

from core.errors import ApiError, api_error_from_exception
from core.net import address_bucket, client_ip


class Stage(Enum):
    BEFORE_AUTH = "before_auth"
    AFTER_AUTH = "after_auth"


# A key function returns the string that is counted, or None when the rate does not apply (e.g. a
# per-user rate on an anonymous request).
KeyFunction = Callable[[object], "str | None"]


def key_ip(request) -> str:
    return f"ip:{address_bucket(client_ip(request))}"


def key_user(request) -> str | None:
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    return None


def key_user_or_ip(request) -> str:
    return key_user(request) or key_ip(request)


def key_principal(request) -> str | None:
    """The credential the request authenticated with (partner, API key, user), set by auth classes."""
    principal = getattr(request, "ratelimit_principal", None)
    return f"principal:{principal}" if principal else key_user(request)


@dataclass(frozen=True)
class Rate:
    name: str
    limit: int
    period_seconds: int
    key: KeyFunction
    stage: Stage = Stage.AFTER_AUTH
    # Per-credential overrides (e.g. a partner's custom limit): request -> limit or None for default.
    limit_override: Callable[[object], int | None] | None = None
    # With the counters' store down: False answers 503 (fail closed, the default); True lets the request
    # through uncounted, only for limits that guard nothing secret or costly (documented per rate).
    fail_open: bool = False


# Seconds a client is asked to wait when the rate limiter's store cannot be reached.
UNAVAILABLE_RETRY_AFTER = 5


def store_unavailable() -> ApiError:
    # The counters' store is down: fail closed (no uncounted traffic), but as the API's own 503 with a
    # Retry-After, never a 500 (issue 10, finding 9).
    return ApiError(
        503,
        "Service temporarily unavailable, try again shortly",
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
    )


@dataclass(frozen=True)
class RatePolicy:
    name: str
    rates: tuple[Rate, ...]


@dataclass(frozen=True)
class RateUsage:
    limit: int
    remaining: int
    reset_at: int  # epoch seconds when the window resets
    limited: bool

    @property
    def retry_after(self) -> int:
        return max(1, self.reset_at - int(time.time()))


# --- Counting ----------------------------------------------------------------------------------------------

# A counter outlives its window by this much (django-ratelimit's margin): created in its window's first
# second, it still holds in the last.
EXPIRY_MARGIN_SECONDS = 5

# KEYS: the stage's counters in order; ARGV: limit and expiry (seconds) of each, in pairs. Returns the counts
# up to and including the first one past its limit: a refused request does not spend the budgets of the
# limits after the one that refused it (as when each limit was one call). The TTL check, rather than
# "count == 1", also gives an expiry to a counter that somehow has none.
_INCREMENT_SCRIPT = Script(
    None,
    b"""
local counts = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if redis.call('TTL', key) == -1 then
    redis.call('EXPIRE', key, ARGV[2 * i])
  end
  counts[i] = count
  if count > tonumber(ARGV[2 * i - 1]) then
    break
  end
end
return counts
""",
)


@dataclass(frozen=True)
class _Counter:
    rate: Rate
    limit: int
    window_end: int  # epoch seconds
    key: str  # the cache's full key (prefix and version included)

    @property
    def expiry(self) -> int:
        return self.rate.period_seconds + EXPIRY_MARGIN_SECONDS


def _window_end(value: str, period: int, now: int) -> int:
    """End of the fixed window `now` falls in. Windows are `period` seconds long, each counted value's offset
    by its crc32 so that not every client's window resets at the same second (django-ratelimit's rule)."""
    if period == 1:
        return now
    end = now - now % period + zlib.crc32(value.encode("utf-8")) % period
    return end + period if end < now else end


def _counter_key(group: str, limit: int, period: int, value: str, window_end: int) -> str:
    # django-ratelimit's key for a limit on every method (RATELIMIT_CACHE_PREFIX "rl:", sha256).
    return "rl:" + hashlib.sha256(f"{group}{limit}/{period}s{value}{window_end}".encode()).hexdigest()


def _redis_client(cache: RedisCache):
    """The Redis client of Django's cache, on the cache's own connection pool. Django's `get_client` builds a
    new client (and its table of response callbacks, a measurable cost per request) on every call; one per
    cache backend instance (Django's are per thread) is enough."""
    client = getattr(cache, "_ratelimit_client", None)
    if client is None:
        client = cache._ratelimit_client = cache._cache.get_client(write=True)
    return client


class _LimiterConnection:
    """One connection of the cache's own pool, kept by the limiter for the commands it sends on every request
    (a stage's script, the guard's read), each one packed command and one reply (issue 15).

    redis-py's `Redis.execute_command` takes a connection from the pool and gives it back, checks it, records
    observability metrics and looks for special commands around every command: measured here, more CPU than the
    round trip itself (about 200 against 70 us a script call). This sends on one connection the same way
    redis-py does underneath: the connection's own retry policy and disconnect-on-error, a reconnection when
    the connection was closed, and the pool's check before reuse (anything pending on the idle socket, such as
    the end of file of a restarted server, means a fresh connection first). Errors are redis-py's own
    (ConnectionError, TimeoutError, ResponseError). A lock keeps the connection to one command at a time, and
    a process forked after it was opened opens its own."""

    def __init__(self, cache: RedisCache):
        self.pool = _redis_client(cache).connection_pool
        self.lock = threading.Lock()
        self.pid = 0
        self.connection = None

    def _connection(self):
        if self.connection is None or self.pid != os.getpid():
            self.connection = self.pool.get_connection()  # never released: this limiter's, for good
            self.pid = os.getpid()
        return self.connection

    def call(self, *args):
        with self.lock:
            connection = self._connection()
            packed = connection.pack_command(*args)

            def send_and_read():
                # The pool's check before it hands a connection out: anything pending on an idle connection (a
                # server that closed it, a reply nobody read) and it is replaced before the command is sent.
                if connection._sock is not None and _pending(connection):
                    connection.disconnect()
                connection.send_packed_command(packed, check_health=False)
                return connection.read_response()

            return connection.retry.call_with_retry(send_and_read, lambda _error: connection.disconnect())


_READABLE = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP if hasattr(select, "poll") else 0


def _pending(connection) -> bool:
    """Anything to read, an error or a hang-up on the idle connection's socket (a poll, nothing sent or read;
    redis-py's `can_read` sets the socket non-blocking and back around a read for the same answer)."""
    if not _READABLE:
        return connection.can_read()
    poller = select.poll()
    poller.register(connection._sock, _READABLE)
    return bool(poller.poll(0))


def _limiter_connection(cache: RedisCache) -> _LimiterConnection:
    limiter = getattr(cache, "_ratelimit_connection", None)
    if limiter is None:
        limiter = cache._ratelimit_connection = _LimiterConnection(cache)
    return limiter


def _run_script(cache: RedisCache, keys: list[str], args: list) -> list[int]:
    """EVALSHA of the increment script; EVAL (which also loads it) when the server does not know it yet."""
    limiter = _limiter_connection(cache)
    try:
        return limiter.call("EVALSHA", _INCREMENT_SCRIPT.sha, len(keys), *keys, *args)
    except NoScriptError:
        return limiter.call("EVAL", _INCREMENT_SCRIPT.script, len(keys), *keys, *args)


def _increment(cache, counters: list[_Counter]) -> list[int]:
    """Count one request on each counter in order, stopping after the first past its limit; the counts."""
    if isinstance(cache, RedisCache):
        keys = [counter.key for counter in counters]
        args = [value for counter in counters for value in (counter.limit, counter.expiry)]
        return _run_script(cache, keys, args)
    counts = []
    for counter in counters:
        try:
            count = 1 if cache.add(counter.key, 1, counter.expiry) else cache.incr(counter.key)
        except ValueError:  # expired between add and incr: this request opens the next window
            cache.set(counter.key, 1, counter.expiry)
            count = 1
        counts.append(count)
        if count > counter.limit:
            break
    return counts


def _counters_for(request, policy: RatePolicy, stage: Stage, cache, now: int) -> list[_Counter]:
    counters = []
    for rate in policy.rates:
        if rate.stage is not stage:
            continue
        value = rate.key(request)
        if value is None:
            continue
        limit = (rate.limit_override(request) if rate.limit_override else None) or rate.limit
        window_end = _window_end(value, rate.period_seconds, now)
        key = _counter_key(f"{policy.name}:{rate.name}", limit, rate.period_seconds, value, window_end)
        # make_key, not make_and_validate_key: "rl:" + a sha256 hex digest is always a valid key, and the check
        # (a Python loop over every character, for memcached) ran on every counter of every request.
        counters.append(_Counter(rate, limit, window_end, cache.make_key(key)))
    return counters


def enforce(request, policy: RatePolicy | None, stage: Stage) -> None:
    """Count this request against the policy's rates of `stage` (one round trip to the store); raise 429
    when one is exhausted.

    `request` is Django's HttpRequest (DRF views pass `request._request`) so the middleware can read the
    usage to render headers. The usage kept is the most restrictive one seen across both stages.
    """
    if policy is None or not getattr(settings, "RATELIMIT_ENABLE", True):
        return
    cache = caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
    now = int(time.time())
    counters = _counters_for(request, policy, stage, cache, now)
    if not counters:
        return
    try:
        counts = _increment(cache, counters)
    except (RedisError, OSError):
        # The store did not answer: pass uncounted only if every limit of the stage may fail open.
        if all(counter.rate.fail_open for counter in counters):
            return
        raise store_unavailable() from None
    for counter, count in zip(counters, counts, strict=False):  # counts stop at the first limit passed
        usage = RateUsage(
            limit=counter.limit,
            remaining=max(0, counter.limit - count),
            reset_at=counter.window_end + 1,  # the window's last second still counts in it: the next one starts after
            limited=count > counter.limit,
        )
        current = getattr(request, "ratelimit_usage", None)
        if usage.limited or current is None or (not current.limited and usage.remaining < current.remaining):
            request.ratelimit_usage = usage
        if usage.limited:
            raise ApiError(429, headers={"Retry-After": str(usage.retry_after)})


# --- Failed authentication -------------------------------------------------------------------------------
#
# Every credential check of an API runs inside `failure_guard` (core.api does it around DRF authentication;
# token-exchange views around their own check). A check that ends in a 401 counts one failure against the
# client address and, when the credential named one (`claim_account`: an API key id, a platform slug, a
# username), against that account, in fixed windows in the rate limiter's cache. Throttle, never lock out:
# - an address with `per_ip` failures in the window is refused (429) before any credential is checked, so
#   even the right credential guessed from it is refused;
# - an account with `per_account` failures is refused only from addresses that have not authenticated it
#   within `known_address_seconds`: a distributed guesser is stopped, the clinic's own servers keep working,
#   and nobody can lock an integration out by failing on purpose.
# Store down: the API's 503, like every other limit (fail closed).


def _cache_get_many(cache, keys: list[str]) -> dict:
    """cache.get_many(keys) for the guard's read on every authenticated request. On Redis, through the rate
    limiter's one client (Django's RedisCache builds a new client, and its table of response callbacks, for
    each call: more CPU than the round trip itself) and Django's own serializer, so values read the same;
    the guard's keys are short ASCII digests, valid for any cache, so they skip the per-character check."""
    if not isinstance(cache, RedisCache):
        return cache.get_many(keys)
    full_keys = [cache.make_key(key) for key in keys]
    values = _limiter_connection(cache).call("MGET", *full_keys)
    loads = cache._cache._serializer.loads
    return {key: loads(value) for key, value in zip(keys, values, strict=True) if value is not None}


@dataclass(frozen=True)
class FailureLimits:
    name: str  # counter namespace (one per API)
    per_ip: int
    per_account: int
    period_seconds: int
    known_address_seconds: int = 30 * 86400


TOO_MANY_FAILURES = "Too many failed authentication attempts, try again later"
_ACTIVE = "_auth_failure_guard"


def _digest(value: str) -> str:
    # Counter keys never hold a username or an address in clear, and stay short whatever was sent.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _is_failed_credential(exc: BaseException) -> bool:
    """A 401 is a failed guess, unless the code said the credential was genuine (e.g. a correctly signed
    token that has expired: a client with a stale token is not guessing)."""
    return not getattr(exc, "genuine_credential", False) and api_error_from_exception(exc).status == 401


def genuine_credential(exc: BaseException) -> BaseException:
    """Mark a refusal that must not count as a failed guess (raise the returned exception)."""
    exc.genuine_credential = True
    return exc


class _FailureGuard:
    def __init__(self, request, limits: FailureLimits):
        self.request = request
        self.limits = limits
        self.cache = caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
        self.now = int(time.time())
        self.window = self.now // limits.period_seconds
        self.address = _digest(address_bucket(client_ip(request)))
        self.account_key: str | None = None
        self.known_key: str | None = None
        self.known = False

    def _key(self, *parts: str) -> str:
        return ":".join(("authfail", self.limits.name, *parts))

    def _store(self, operation, *args):
        try:
            return operation(*args)
        except (RedisError, OSError):
            raise store_unavailable() from None

    def _throttled(self, limit: int) -> ApiError:
        reset_at = (self.window + 1) * self.limits.period_seconds
        usage = RateUsage(limit=limit, remaining=0, reset_at=reset_at, limited=True)
        self.request.ratelimit_usage = usage  # the 429's headers and Routiq's rate_limit block
        return ApiError(429, TOO_MANY_FAILURES, headers={"Retry-After": str(usage.retry_after)})

    def enter(self, *, claims_first: bool) -> None:
        self.ip_key = self._key("ip", self.address, str(self.window))
        self.address_checked = False
        if not claims_first:
            self.check_address()
        # else read with the claimed account's counters (`claim`), or as the block ends if nothing was claimed.

    def _check_address(self, values: dict) -> None:
        self.address_checked = True
        if values.get(self.ip_key, 0) >= self.limits.per_ip:
            raise self._throttled(self.limits.per_ip)

    def check_address(self) -> None:
        """The address's check, if `claim` has not made it: a used-up address is answered 429 whatever the
        credential check decided."""
        if not self.address_checked:
            self._check_address(self._store(_cache_get_many, self.cache, [self.ip_key]))

    def claim(self, account: str) -> None:
        digest = _digest(account)
        self.account_key = self._key("account", digest, str(self.window))
        self.known_key = self._key("known", digest, self.address)
        keys = [self.account_key, self.known_key] + ([] if self.address_checked else [self.ip_key])
        values = self._store(_cache_get_many, self.cache, keys)
        if not self.address_checked:
            self._check_address(values)  # the address first: its 429 does not depend on the account
        self.known = self.known_key in values
        if not self.known and values.get(self.account_key, 0) >= self.limits.per_account:
            raise self._throttled(self.limits.per_account)

    def _count(self, key: str) -> None:
        # add + incr: atomic in Redis, and the key of a window outlives that window.
        self._store(self.cache.add, key, 0, self.limits.period_seconds + 60)
        self._store(self.cache.incr, key)

    def failed(self) -> None:
        self._count(self.ip_key)
        if self.account_key:
            self._count(self.account_key)

    def succeeded(self) -> None:
        if self.known_key and not self.known:
            self._store(self.cache.set, self.known_key, 1, self.limits.known_address_seconds)


@contextlib.contextmanager
def failure_guard(request, limits: FailureLimits | None, *, claims_first: bool = False):
    """Run one credential check inside this. `request` is Django's HttpRequest. Raises the API's 429 when
    the client address (or, after `claim_account`, the account from an unknown address) has used up its
    failures; counts a 401 leaving the block; remembers the address of an account that authenticated.

    The address is checked as the block starts, so no credential is checked for a used-up address. With
    `claims_first` (the check calls `claim_account` before it reads or checks any credential), it is read with
    the account's counters at the claim instead: one round trip to the store for both (issue 15). A block
    that ends without a claim (a request without credentials) has its address read then: a used-up address
    still gets the 429, never the check's own answer, and its refused requests are not counted again."""
    if limits is None or not getattr(settings, "RATELIMIT_ENABLE", True):
        yield
        return
    request = getattr(request, "_request", request)  # DRF's Request wraps Django's
    guard = _FailureGuard(request, limits)
    guard.enter(claims_first=claims_first)
    previous = getattr(request, _ACTIVE, None)
    setattr(request, _ACTIVE, guard)
    try:
        yield
    except BaseException as exc:
        guard.check_address()
        if _is_failed_credential(exc):
            guard.failed()
        raise
    else:
        guard.check_address()
        guard.succeeded()
    finally:
        setattr(request, _ACTIVE, previous)


def claim_account(request, account: str | None) -> None:
    """The credential being checked names `account` (call before checking it, inside `failure_guard`):
    its failures count against the account too, and an account that has used up its failures is refused
    from addresses it never authenticated from. No-op outside a guard."""
    guard = getattr(getattr(request, "_request", request), _ACTIVE, None)
    if guard is not None and account:
        guard.claim(account)
