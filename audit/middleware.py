"""Writes the access-log row of every request under an API's paths, before the answer leaves.

The row is inserted (and committed) after the view has decided the response but before this middleware
returns it, so no byte of the body reaches the client until its row exists. When the row cannot be
written (the database went away between the view and the row, a bad value), the prepared answer is
dropped and the client gets that API's own 503 with Retry-After instead: protected data never leaves
without its access row (issue 10, finding 10; docs/decisions.md).

The row of a safe-method request (GET, HEAD, OPTIONS, TRACE: a read) commits asynchronously, still inserted
before the answer leaves; a request that may write (POST, PUT, PATCH, DELETE, anything else) keeps a durable
commit of its row (issue 15; the loss window is in docs/decisions.md).

A write whose service runs one outermost transaction may put the request's row in that transaction instead
(`access_row_join`: one durable commit for the write, its audit events and its access row). The middleware
then writes no row of its own, unless that transaction did not commit (rolled back, failed, never inserted
the row) or the answer's status is not the one the row recorded: the row is never missing (issue 15).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from audit.models import AccessLog
from audit.services import access_log_record
from core.actors import ActorType
from core.apis import family_for_path, family_for_request
from core.envelopes import render_api_error
from core.errors import ApiError
from core.net import client_ip
from core.ratelimit import UNAVAILABLE_RETRY_AFTER
from core.time import utc_now

logger = logging.getLogger("audit")

UNAVAILABLE_MESSAGE = "Service temporarily unavailable, try again shortly"
# RFC 9110's safe methods: their rows may commit asynchronously.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class AccessLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        created_at = utc_now()
        request._access_log_began = (started, created_at)  # for access_row_join
        response = self.get_response(request)
        # Every request under an API's paths (health probes and docs are not API traffic).
        family = family_for_request(request) if family_for_path(request.path) else None
        if family is None:
            return response
        joined = getattr(request, "_access_row_joined", None)
        if joined is not None and joined.committed:
            if joined.status_code == response.status_code:
                return response  # its row committed with the request's write transaction
            # The answer changed after that commit (an error after the write): its own row as well, so
            # the status that left is recorded (two rows for this request id).
            logger.warning(
                "Request %s: access row committed with status %s, answer %s: writing a second row",
                getattr(request, "request_id", ""),
                joined.status_code,
                response.status_code,
            )
        try:
            fields = self._fields(request, response.status_code, family, created_at, started)
            access_log_record(durable=request.method not in SAFE_METHODS, **fields)
        except Exception:
            return self._withheld(request, response, family)
        return response

    @staticmethod
    def _fields(request, status_code, family, created_at, started) -> dict:
        actor_type, actor_id = getattr(request, "audit_actor", ("", ""))
        if not actor_type:
            user = getattr(request, "user", None)
            if user is not None and getattr(user, "is_authenticated", False):
                actor_type, actor_id = ActorType.USER.value, str(user.pk)
            else:
                actor_type, actor_id = ActorType.ANONYMOUS.value, ""
        return {
            "created_at": created_at,
            "api": family.name,
            "actor_type": actor_type,
            "actor_id": actor_id,
            "on_behalf_of": getattr(request, "audit_on_behalf_of", ""),
            "organization_id": getattr(request, "audit_organization", "") or "",
            "method": request.method[:10],
            "path": request.path[:500],
            "subject_ids": getattr(request, "audit_subjects", []),
            "status_code": status_code,
            "reason": getattr(request, "audit_reason", "") if status_code >= 400 else "",
            "ip": client_ip(request),
            "user_agent": request.headers.get("User-Agent", "")[:300],
            "request_id": getattr(request, "request_id", ""),
            "duration_ms": int((time.perf_counter() - started) * 1000),
        }

    @staticmethod
    def _withheld(request, response, family):
        """The API's 503 in place of an answer whose access row could not be written. The log line names
        what the row would have (ids only, never PHI), so the attempt itself is not lost."""
        actor_type, actor_id = getattr(request, "audit_actor", ("", ""))
        logger.exception(
            "Access row not written, withheld %s for %s %s: request %s, actor %s:%s, on behalf of %s, "
            "organization %s, subjects %s",
            response.status_code,
            request.method,
            request.path,
            getattr(request, "request_id", ""),
            actor_type or "-",
            actor_id,
            getattr(request, "audit_on_behalf_of", "") or "-",
            getattr(request, "audit_organization", "") or "-",
            ",".join(getattr(request, "audit_subjects", [])) or "-",
        )
        error = ApiError(503, UNAVAILABLE_MESSAGE, headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)})
        unavailable = render_api_error(request, error, family)
        # The request was counted: keep its rate-limit budget; Retry-After is this answer's own.
        for name, value in response.items():
            if name.lower().startswith("x-ratelimit-"):
                unavailable[name] = value
        unavailable["Cache-Control"] = "no-store"
        return unavailable


class _JoinedRow:
    """A request's access row handed to its write transaction: done once that transaction committed it. In
    autocommit (`in_statement`) the caller inserts it with its write in one statement, which commits by itself:
    the row's primary key, set only when that statement returned, says it committed."""

    __slots__ = ("_committed", "in_statement", "row", "status_code")

    def __init__(self, row: AccessLog, status_code: int, *, in_statement: bool):
        self.row, self.status_code, self.in_statement, self._committed = row, status_code, in_statement, False

    def mark_committed(self) -> None:
        # Only a row the transaction actually inserted (its primary key set by the INSERT) counts.
        self._committed = self.row.pk is not None

    @property
    def committed(self) -> bool:
        return self._committed or (self.in_statement and self.row.pk is not None)


def access_row_join(request, *, status_code: int, subjects: Iterable[str] = ()) -> AccessLog | None:
    """This write request's access row as an unsaved AccessLog, for the caller to INSERT inside its open
    transaction (issue 15: one durable commit for the write and its row instead of two). `status_code` is
    the status the view will answer with once that transaction commits; `subjects` ("lead:<id>") are added
    to those already noted on the request (the request's own notes are left as they are, for the
    middleware's row if this one is not committed).

    None, and the middleware writes the row as usual, unless: the access-log middleware is handling this
    request, it is an API request that may write (not a safe method), and either the caller is in the
    connection's outermost transaction (so the row commits durably with it; never a savepoint, never a test's
    wrapping transaction) and that transaction is not already doomed, or the connection is in autocommit with no
    transaction open (the caller inserts the row with its write in one statement, its own durable commit). Once
    per request, unless the row handed out before was never inserted (a write that stood down and is retried in
    a transaction).

    The middleware skips its own row only if it was committed with the row inserted: in a transaction, an
    on_commit callback (robust) checks the row got its primary key; in autocommit the primary key, set only
    once the statement returned, is the proof. A rollback, a failed statement or commit, or a row the caller
    did not insert leaves the row to the middleware."""
    http_request = getattr(request, "_request", request)  # DRF Request wraps Django's HttpRequest
    began = getattr(http_request, "_access_log_began", None)
    earlier = getattr(http_request, "_access_row_joined", None)
    if began is None or http_request.method in SAFE_METHODS or (earlier is not None and earlier.row.pk is not None):
        return None
    family = family_for_request(http_request) if family_for_path(http_request.path) else None
    conn = connections[DEFAULT_DB_ALIAS]
    blocks = conn.atomic_blocks
    in_statement = not blocks and conn.get_autocommit()
    in_outermost = len(blocks) == 1 and not blocks[0]._from_testcase and not conn.needs_rollback
    if family is None or not (in_statement or in_outermost):
        return None
    started, created_at = began
    fields = AccessLogMiddleware._fields(http_request, status_code, family, created_at, started)
    fields["subject_ids"] = [*fields["subject_ids"], *subjects]
    joined = _JoinedRow(AccessLog(**fields), status_code, in_statement=in_statement)
    http_request._access_row_joined = joined
    if not in_statement:
        transaction.on_commit(joined.mark_committed, robust=True)
    return joined.row
