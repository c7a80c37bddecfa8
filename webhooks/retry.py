"""Retry policies, one per endpoint scheme: the only place the schedules live (table in docs/webhooks.md).

`delays[n]` is the wait after the (n+1)-th failed attempt before the next one, so a policy makes at most
`len(delays) + 1` attempts. `window`, when set, is a hard bound: no attempt later than `window` after the
first (LoveRescue: 5 attempts within 24 hours), even when a receiver's Retry-After asks for later.

Jitter: each computed delay is stretched by up to `JITTER_FRACTION` (random), so endpoints that failed
together do not retry in lockstep. The LoveRescue schedule stays inside its 24 h window with full jitter
(1111 min x 1.1 = 20 h 22 min). Tests set `JITTER_FRACTION = 0`.
"""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

JITTER_FRACTION = 0.1
# Longest Retry-After honoured; a larger value (or a date further away) is cut to this.
RETRY_AFTER_CAP = timedelta(hours=6)

_random = random.Random()


@dataclass(frozen=True)
class RetryPolicy:
    name: str
    delays: tuple[timedelta, ...]
    window: timedelta | None = None

    @property
    def max_attempts(self) -> int:
        return len(self.delays) + 1

    def delay_after(self, attempt_count: int) -> timedelta | None:
        """Wait after `attempt_count` attempts (all failed) before the next one; None when exhausted."""
        if attempt_count < 1 or attempt_count > len(self.delays):
            return None
        delay = self.delays[attempt_count - 1]
        if JITTER_FRACTION:
            delay += delay * (JITTER_FRACTION * _random.random())
        return delay

    def next_attempt_at(
        self,
        *,
        attempt_count: int,
        now: datetime,
        first_attempt_at: datetime,
        retry_after: timedelta | None = None,
    ) -> datetime | None:
        """When to try next after a failure, or None if the delivery has failed for good.

        `retry_after` (a receiver's 429/503 Retry-After, already capped) is a floor on the wait."""
        delay = self.delay_after(attempt_count)
        if delay is None:
            return None
        if retry_after is not None and retry_after > delay:
            delay = retry_after
        when = now + delay
        if self.window is not None:
            deadline = first_attempt_at + self.window
            if when > deadline:
                if deadline <= now:
                    return None
                when = deadline
        return when

    def offsets(self) -> list[timedelta]:
        """Attempt times relative to the first attempt, without jitter (for docs and tests)."""
        total = timedelta(0)
        result = [total]
        for delay in self.delays:
            total += delay
            result.append(total)
        return result


_M = timedelta(minutes=1)
_H = timedelta(hours=1)

# LoveRescue spec: "exponential backoff, max 5 attempts over 24 hours": x10 from one minute.
LOVERESCUE = RetryPolicy(
    name="loverescue",
    delays=(1 * _M, 10 * _M, 100 * _M, 1000 * _M),
    window=timedelta(hours=24),
)
# Standard Webhooks / Svix schedule (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), extended by
# 14 h and 24 h to about 3 days (last attempt 65 h 35 min 5 s after the first).
STANDARD = RetryPolicy(
    name="standard",
    delays=(timedelta(seconds=5), 5 * _M, 30 * _M, 2 * _H, 5 * _H, 10 * _H, 10 * _H, 14 * _H, 24 * _H),
)

POLICIES = {"loverescue": LOVERESCUE, "mark": STANDARD, "standard": STANDARD}


def policy_for(scheme: str) -> RetryPolicy:
    return POLICIES[scheme]


def parse_retry_after(value: str | None, *, now: datetime) -> timedelta | None:
    """Retry-After as delta-seconds or an HTTP date, capped at RETRY_AFTER_CAP; None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        delay = timedelta(seconds=int(value))
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = max(when - now, timedelta(0))
    return min(delay, RETRY_AFTER_CAP)
