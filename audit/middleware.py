"""Writes the access-log row of every request under an API's paths, before the answer leaves.

The row is inserted (and committed) after the view has decided the response but before this middleware
returns it, so no byte of the body reaches the client until its row exists. When the row cannot be
written (the database went away between the view and the row, a bad value), the prepared answer is
dropped and the client gets that API's own 503 with Retry-After instead: protected data never leaves
without its access row (issue 10, finding 10; docs/decisions.md).

The row of a safe-method request (GET, HEAD, OPTIONS, TRACE: a read) commits asynchronously, still inserted
before the answer leaves; a request that may write (POST, PUT, PATCH, DELETE, anything else) keeps a durable
commit of its row (issue 15; the loss window is in docs/decisions.md).
"""

from __future__ import annotations

import logging
import time

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
        response = self.get_response(request)
        # Every request under an API's paths (health probes and docs are not API traffic).
        family = family_for_request(request) if family_for_path(request.path) else None
        if family is None:
            return response
        try:
            fields = self._fields(request, response, family, created_at, started)
            access_log_record(durable=request.method not in SAFE_METHODS, **fields)
        except Exception:
            return self._withheld(request, response, family)
        return response

    @staticmethod
    def _fields(request, response, family, created_at, started) -> dict:
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
            "status_code": response.status_code,
            "reason": getattr(request, "audit_reason", "") if response.status_code >= 400 else "",
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
