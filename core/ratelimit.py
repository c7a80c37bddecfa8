"""Rate limiting on django-ratelimit's usage API, with per-API policies and headers.

Counting is django-ratelimit's: `cache.add` then atomic `cache.incr` in the default cache (Redis when
REDIS_URL is set), fixed windows per key. This module only chooses the key and rate per request, keeps
the most restrictive usage for the response headers, and raises 429 through the error envelope.

Two stages, because some limits must hold before credentials are checked (per-IP limits also throttle
requests with bad credentials) and others need the authenticated credential (per-key, per-user).

Failed authentication is counted here too (`failure_guard`, `claim_account`): per client address and per
claimed account, in the same cache, with each API's `FailureLimits` declared in core.apis.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from django.conf import settings
from django.core.cache import caches
from django_ratelimit.core import get_usage
from redis.exceptions import RedisError

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


def _usage_for(request, policy: RatePolicy, rate: Rate) -> RateUsage | None:
    value = rate.key(request)
    if value is None:
        return None
    limit = (rate.limit_override(request) if rate.limit_override else None) or rate.limit
    try:
        usage = get_usage(
            request,
            group=f"{policy.name}:{rate.name}",
            key=lambda _group, _request: value,
            rate=(limit, rate.period_seconds),
            increment=True,
        )
    except (RedisError, OSError):
        if rate.fail_open:
            return None
        raise store_unavailable() from None
    if usage is None:  # RATELIMIT_ENABLE is off
        return None
    time_left = max(1, usage["time_left"])  # a window ending this very second resets in 1 s
    return RateUsage(
        limit=usage["limit"],
        remaining=max(0, usage["limit"] - usage["count"]),
        reset_at=int(time.time()) + time_left,
        limited=usage["should_limit"],
    )


def enforce(request, policy: RatePolicy | None, stage: Stage) -> None:
    """Count this request against the policy's rates of `stage`; raise 429 when one is exhausted.

    `request` is Django's HttpRequest (DRF views pass `request._request`) so the middleware can read the
    usage to render headers. The usage kept is the most restrictive one seen across both stages.
    """
    if policy is None:
        return
    for rate in policy.rates:
        if rate.stage is not stage:
            continue
        usage = _usage_for(request, policy, rate)
        if usage is None:
            continue
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

    def enter(self) -> None:
        self.ip_key = self._key("ip", self.address, str(self.window))
        if self._store(self.cache.get, self.ip_key, 0) >= self.limits.per_ip:
            raise self._throttled(self.limits.per_ip)

    def claim(self, account: str) -> None:
        digest = _digest(account)
        self.account_key = self._key("account", digest, str(self.window))
        self.known_key = self._key("known", digest, self.address)
        values = self._store(self.cache.get_many, [self.account_key, self.known_key])
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
def failure_guard(request, limits: FailureLimits | None):
    """Run one credential check inside this. `request` is Django's HttpRequest. Raises the API's 429 when
    the client address (or, after `claim_account`, the account from an unknown address) has used up its
    failures; counts a 401 leaving the block; remembers the address of an account that authenticated."""
    if limits is None or not getattr(settings, "RATELIMIT_ENABLE", True):
        yield
        return
    request = getattr(request, "_request", request)  # DRF's Request wraps Django's
    guard = _FailureGuard(request, limits)
    guard.enter()
    previous = getattr(request, _ACTIVE, None)
    setattr(request, _ACTIVE, guard)
    try:
        yield
    except BaseException as exc:
        if _is_failed_credential(exc):
            guard.failed()
        raise
    else:
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
