"""Rendered JSON bodies kept in Django's default cache (Redis when REDIS_URL is set, else this process's
memory), for reads that are costly to compute and cheap to key exactly.

The caller owns correctness: its key must name everything the body depends on (for the therapist
dashboard's derived analytics, a generation token every relevant write replaces in its own transaction), and
it says until when a body stays valid as the clock moves (`valid_until`, inclusive; None: until the key
changes). An entry is served only while `computed_at <= now <= valid_until`, so a clock that steps back
never serves a body computed "in the future".

Every key is namespaced by a fingerprint of this deployment's code (the source of the project's own apps), so a
deployment that changes how a body is built or rendered never serves an entry the previous code stored.

The subjects that computing a body noted for the access log (core.context.note_subjects) are kept with it and
noted again whenever it is served, so the access log names the same subjects either way. `sealed=True` keeps the
body and those subjects encrypted under the field-encryption key (core.encryption.seal, the cache key and the
entry's validity as authenticated context): for bodies with personal data, which must not sit in Redis in clear.
An entry that does not unseal (a key rotated out, tampering) is a miss.

Only the default rendering is cached (the negotiated media type is exactly the renderer's own: no
`indent=` or other parameter); anything else is computed each time. A cache that cannot be reached is a
miss: the body is computed and answered, and the failure logged (without the key or the body).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from django.apps import apps
from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse
from rest_framework.response import Response

from core.context import noted_subjects
from core.encryption import DecryptionError, seal, unseal

__all__ = ["cached_json_response"]

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LENGTH = struct.Struct(">I")  # a sealed entry: length of the subjects' JSON, the JSON, then the body


def _micros(instant: datetime) -> int:
    """Exact microseconds since the epoch (a float timestamp rounds at this magnitude)."""
    return (instant - _EPOCH) // timedelta(microseconds=1)


@functools.cache
def _code_fingerprint() -> str:
    """16 hex chars of SHA-256 over the Python source of the project's own apps (under BASE_DIR, not
    installed packages) and its settings package, once per process (a few ms)."""
    base = Path(settings.BASE_DIR).resolve()
    digest = hashlib.sha256()
    roots = {Path(app.path).resolve() for app in apps.get_app_configs()} | {base / "config"}
    own = (root for root in roots if root.is_relative_to(base) and "site-packages" not in root.parts)
    for root in sorted(own):
        for source in sorted(root.rglob("*.py")):
            digest.update(str(source.relative_to(base)).encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _context(key: str, computed_at: int, valid_until: int | None) -> bytes:
    return f"{key}|{computed_at}|{valid_until}".encode()


def _entry_get(key: str, now: datetime) -> tuple[bytes, tuple[str, ...]] | None:
    """(body, subjects) of the entry under `key` if one is valid at `now`, else None."""
    try:
        entry = cache.get(key)
    except Exception as exc:  # noqa: BLE001 (any cache failure is a miss, never a failed request)
        logger.warning("body cache read failed: %s", type(exc).__name__)
        return None
    if not isinstance(entry, tuple) or len(entry) != 4:
        return None
    computed_at, valid_until, subjects, body = entry
    stamp = _micros(now)
    if stamp < computed_at or (valid_until is not None and stamp > valid_until):
        return None
    if subjects is None:  # sealed: subjects and body are inside
        try:
            opened = unseal(body, context=_context(key, computed_at, valid_until))
        except DecryptionError:
            logger.warning("body cache entry did not unseal")
            return None
        (length,) = _LENGTH.unpack_from(opened)
        head = _LENGTH.size + length
        subjects, body = tuple(orjson.loads(opened[_LENGTH.size : head])), opened[head:]
    return body, subjects


def _entry_put(
    key: str,
    body: bytes,
    subjects: tuple[str, ...],
    *,
    computed_at: datetime,
    valid_until: datetime | None,
    sealed: bool,
) -> None:
    seconds = settings.BODY_CACHE_SECONDS
    if valid_until is not None:
        seconds = min(seconds, math.ceil((valid_until - computed_at).total_seconds()))
    if seconds <= 0:
        return
    computed, until = _micros(computed_at), None if valid_until is None else _micros(valid_until)
    if sealed:
        listed = orjson.dumps(subjects)
        payload = seal(_LENGTH.pack(len(listed)) + listed + body, context=_context(key, computed, until))
        entry = (computed, until, None, payload)
    else:
        entry = (computed, until, subjects, body)
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
    valid_until: Callable[[], datetime | None] = lambda: None,
    sealed: bool = False,
) -> HttpResponse:
    """The body under `key` if one is valid at `now`, else `data()` rendered by the view's negotiated renderer,
    stored until `valid_until()` (asked only when storing), and answered. The subjects `data()` noted for the
    access log are stored with the body and noted again when it is served. `key` None, a disabled cache
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
    key = f"body:{_code_fingerprint()}:{key}"
    noted = noted_subjects(request)
    served = _entry_get(key, now)
    if served is not None:
        body, subjects = served
        noted.extend(subjects)
    else:
        already = len(noted)
        result = data()
        subjects = tuple(noted[already:])
        body = renderer.render(result, renderer.media_type, view.get_renderer_context())
        _entry_put(key, body, subjects, computed_at=now, valid_until=valid_until(), sealed=sealed)
    return HttpResponse(body, content_type=content_type)
