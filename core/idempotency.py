"""`Idempotency-Key` for POST endpoints that create or send something (Mark: POST /appointments,
POST /messages, POST /messages/voice): a retried request gets the first answer again and nothing is
created or sent twice.

One mechanism, `idempotent(request, ...)`, that a view wraps its work in:

- no header: the work runs as usual (the view's services keep their own transactions);
- a header that is not 1-255 printable ASCII characters: 400 naming the header;
- scope: (API, principal = the credential's user, organization, key). Keys of one user never collide
  with another user's or another clinic's;
- the request's fingerprint is sha256 over method, path and body (JSON: its canonical form; multipart:
  the fields and a sha256 of each file, so a client that rebuilds the multipart boundary on retry is
  still the same request);
- a stored answer for the scope with the same fingerprint: replayed (same status and body, header
  `Idempotent-Replayed: true`), the work does not run; a different fingerprint: 422
  `idempotency_key_reused` naming the header;
- the work runs in one transaction with the storing of its answer, under a transaction-scoped
  PostgreSQL advisory lock on the scope (`pg_try_advisory_xact_lock`): a concurrent duplicate that
  finds the lock taken answers 409 `idempotency_key_in_flight` at once (retry later: it then replays).
  Because the effect and the stored answer commit together, a crash mid-request leaves no half state:
  the retry simply runs the work.
- only successful (2xx) answers are stored: an error (unknown patient, opted out, bad audio) rolls back
  and a retry with the same key runs again.
- keys live 24 hours (IDEMPOTENCY_KEY_HOURS): an expired row is ignored, replaced by the next use of
  the key, and deleted by `idempotency_purge()` (the retention task).

SQLite (embedded default) has no advisory locks; its writes are serialized by the database lock.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response

from core.errors import ApiError
from core.time import utc_now

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_RE = re.compile(r"[\x20-\x7e]{1,255}")
DEFAULT_HOURS = 24
_FILE_CHUNK = 1 << 16

# The header as the OpenAPI schema documents it (`parameters=[idempotency.PARAMETER]`).
PARAMETER = OpenApiParameter(
    HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="1-255 printable ASCII characters, kept 24 hours: a retry with the same key and body gets the "
    "first answer again (header Idempotent-Replayed: true) and creates or sends nothing; the same key with "
    "another body is 422; while the first request is still running, 409.",
)
# The response header of a replayed answer, documented on the 201 of the operations that take the key.
REPLAYED_PARAMETER = OpenApiParameter(
    REPLAYED_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    enum=["true"],
    response=[201],
    description="Present (true) when this answer is the stored answer of an earlier request with the same "
    "Idempotency-Key: nothing was created or sent again.",
)
PARAMETERS = [PARAMETER, REPLAYED_PARAMETER]


def key_hours() -> int:
    return int(getattr(settings, "IDEMPOTENCY_KEY_HOURS", DEFAULT_HOURS))


def header_key(request) -> str | None:
    """The request's Idempotency-Key, None without one; a malformed one is a 400 naming the header."""
    value = request.META.get("HTTP_IDEMPOTENCY_KEY")
    if value is None:
        return None
    if not KEY_RE.fullmatch(value) or not value.strip():
        raise ApiError(
            400,
            f"{HEADER} must be 1 to 255 printable ASCII characters",
            code="invalid_idempotency_key",
            details={"header": HEADER},
        )
    return value


def _file_digest(upload) -> str:
    digest = hashlib.sha256()
    upload.seek(0)
    for chunk in iter(lambda: upload.read(_FILE_CHUNK), b""):
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


def _canonical_body(request) -> Any:
    data = request.data
    files = getattr(request, "FILES", None) or {}
    if hasattr(data, "lists"):  # QueryDict: form or multipart fields
        fields = {name: values for name, values in data.lists() if name not in files}
    else:
        fields = data
    body: dict[str, Any] = {"data": fields}
    if files:
        body["files"] = {
            name: [[upload.size, _file_digest(upload)] for upload in files.getlist(name)] for name in files
        }
    return body


def request_fingerprint(request) -> str:
    body = json.dumps(_canonical_body(request), sort_keys=True, ensure_ascii=True, default=str)
    text = f"{request.method}\n{request.path}\n{body}"
    return hashlib.sha256(text.encode()).hexdigest()


def _scope_lock_id(scope: dict) -> int:
    raw = hashlib.sha256(json.dumps(scope, sort_keys=True).encode()).digest()[:8]
    return int.from_bytes(raw, "big", signed=True)


def _try_lock(scope: dict) -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_scope_lock_id(scope)])
        return bool(cursor.fetchone()[0])


def _stored(scope: dict, fingerprint: str):
    """The live stored answer for the scope (None), or 422 when the key was used for another request."""
    from core.models import IdempotencyKey

    row = IdempotencyKey.objects.filter(**scope, expires_at__gt=utc_now()).first()
    if row is None:
        return None
    if row.fingerprint != fingerprint:
        raise ApiError(
            422,
            f"This {HEADER} was already used for a different request",
            code="idempotency_key_reused",
            details={"header": HEADER},
        )
    return row


def _replay(row) -> Response:
    body = json.loads(row.response_body) if row.response_body else None
    return Response(body, status=row.response_status, headers={REPLAYED_HEADER: "true"})


def _store(scope: dict, fingerprint: str, response) -> None:
    from core.models import IdempotencyKey

    now = utc_now()
    IdempotencyKey.objects.filter(**scope).delete()  # an expired row of this key (a live one replayed)
    IdempotencyKey.objects.create(
        **scope,
        fingerprint=fingerprint,
        response_status=response.status_code,
        response_body=json.dumps(response.data, ensure_ascii=False, default=str),
        created_at=now,
        expires_at=now + timedelta(hours=key_hours()),
    )


def _principal(request) -> str:
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        raise ValueError("idempotent() needs an authenticated request")
    return f"user:{user.pk}"


def _organization(request) -> str:
    scope = getattr(request, "organization_scope", None)
    organization = getattr(scope, "organization", None)
    return getattr(organization, "public_id", "") or ""


def idempotent(
    request,
    *,
    api: str,
    run: Callable[[Any], Response],
    prepare: Callable[[], Any] | None = None,
    principal: str | None = None,
    organization: str | None = None,
) -> Response:
    """Answer the request with `run(prepared)` at most once per Idempotency-Key (module docstring).

    `prepare()` runs first, OUTSIDE the transaction (slow work with no database effect, e.g. a call to
    a vendor), and only when the request is not a replay; `run` gets its result and runs inside the
    transaction that also stores the answer. The scope's principal defaults to the request's user and
    its organization to the request's organization scope (core.scoping)."""
    key = header_key(request)
    if key is None:  # exactly as without this mechanism: no transaction of ours around the work
        return run(prepare() if prepare else None)
    scope = {
        "api": api,
        "principal": principal if principal is not None else _principal(request),
        "organization": organization if organization is not None else _organization(request),
        "key": key,
    }
    fingerprint = request_fingerprint(request)
    row = _stored(scope, fingerprint)
    if row is not None:
        return _replay(row)
    prepared = prepare() if prepare else None
    with transaction.atomic():
        if not _try_lock(scope):
            raise ApiError(
                409,
                f"A request with this {HEADER} is still in progress; retry later",
                code="idempotency_key_in_flight",
                details={"header": HEADER},
            )
        row = _stored(scope, fingerprint)  # a duplicate may have finished between the check and the lock
        if row is not None:
            return _replay(row)
        response = run(prepared)
        if 200 <= response.status_code < 300:
            _store(scope, fingerprint, response)
        return response


def idempotency_purge(*, now=None) -> int:
    """Delete expired keys; returns how many."""
    from core.models import IdempotencyKey

    deleted, _ = IdempotencyKey.objects.filter(expires_at__lte=now or utc_now()).delete()
    return deleted
