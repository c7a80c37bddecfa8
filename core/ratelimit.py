"""Rate limiting on django-ratelimit's usage API, with per-API policies and headers.

Counting is django-ratelimit's: `cache.add` then atomic `cache.incr` in the default cache (Redis when
REDIS_URL is set), fixed windows per key. This module only chooses the key and rate per request, keeps
the most restrictive usage for the response headers, and raises 429 through the error envelope.

Two stages, because some limits must hold before credentials are checked (per-IP limits also throttle
requests with bad credentials) and others need the authenticated credential (per-key, per-user).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from django_ratelimit.core import get_usage
from redis.exceptions import RedisError

from core.errors import ApiError
from core.net import client_ip


class Stage(Enum):
    BEFORE_AUTH = "before_auth"
    AFTER_AUTH = "after_auth"


# A key function returns the string that is counted, or None when the rate does not apply (e.g. a
# per-user rate on an anonymous request).
KeyFunction = Callable[[object], "str | None"]


def key_ip(request) -> str:
    return f"ip:{client_ip(request)}"


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


# Seconds a client is asked to wait when the rate limiter's store cannot be reached.
UNAVAILABLE_RETRY_AFTER = 5


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
        # The counters' store is down: fail closed (no uncounted traffic), but as the API's own 503 with a
        # Retry-After, never a 500 (issue 10, finding 9).
        raise ApiError(
            503,
            "Service temporarily unavailable, try again shortly",
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
        ) from None
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
