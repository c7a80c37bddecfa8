"""Rendered JSON bodies kept in Django's default cache (Redis when REDIS_URL is set, else this process's
memory), for reads that are costly to compute and cheap to key exactly.

The caller owns correctness: its key must name everything the body depends on (for the therapist
dashboard's derived analytics, a generation token every relevant write replaces in its own transaction), and
it says until when a body stays valid as the clock moves (`valid_until`, inclusive; None: until the key
changes). An entry is served only while `computed_at <= now <= valid_until`, so a clock that steps back
never serves a body computed "in the future".

Only the default rendering is cached (the negotiated media type is exactly the renderer's own: no
`indent=` or other parameter); anything else is computed each time. A cache that cannot be reached is a
miss: the body is computed and answered, and the failure logged (without the key or the body).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse
from rest_framework.response import Response

__all__ = ["cached_json_response"]

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(instant: datetime) -> int:
    """Exact microseconds since the epoch (a float timestamp rounds at this magnitude)."""
    return (instant - _EPOCH) // timedelta(microseconds=1)


def _entry_get(key: str, now: datetime) -> bytes | None:
    try:
        entry = cache.get(key)
    except Exception as exc:  # noqa: BLE001 (any cache failure is a miss, never a failed request)
        logger.warning("body cache read failed: %s", type(exc).__name__)
        return None
    if not isinstance(entry, tuple) or len(entry) != 3:
        return None
    computed_at, valid_until, body = entry
    stamp = _micros(now)
    if stamp < computed_at or (valid_until is not None and stamp > valid_until):
        return None
    return body


def _entry_put(key: str, body: bytes, *, computed_at: datetime, valid_until: datetime | None) -> None:
    seconds = settings.BODY_CACHE_SECONDS
    if valid_until is not None:
        seconds = min(seconds, math.ceil((valid_until - computed_at).total_seconds()))
    if seconds <= 0:
        return
    entry = (_micros(computed_at), None if valid_until is None else _micros(valid_until), body)
    try:
        cache.set(key, entry, timeout=seconds)
    except Exception as exc:  # noqa: BLE001
        logger.warning("body cache write failed: %s", type(exc).__name__)


def cached_json_response(
    request,
    view,
    *,
    key: str | None,
    now: datetime,
    data: Callable[[], Any],
    valid_until: Callable[[], datetime | None],
) -> HttpResponse:
    """The body under `key` if one is valid at `now`, else `data()` rendered by the view's negotiated renderer,
    stored until `valid_until()` (asked only when storing), and answered. `key` None, a disabled cache
    (BODY_CACHE_SECONDS 0) or a non-default rendering: `data()` answered as a plain DRF Response, nothing
    stored."""
    renderer = getattr(request, "accepted_renderer", None)
    cacheable = (
        key is not None
        and settings.BODY_CACHE_SECONDS > 0
        and renderer is not None
        and request.accepted_media_type == renderer.media_type
    )
    if not cacheable:
        return Response(data())
    content_type = f"{renderer.media_type}; charset={renderer.charset}" if renderer.charset else renderer.media_type
    body = _entry_get(key, now)
    if body is None:
        body = renderer.render(data(), renderer.media_type, view.get_renderer_context())
        _entry_put(key, body, computed_at=now, valid_until=valid_until())
    return HttpResponse(body, content_type=content_type)
