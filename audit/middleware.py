"""Writes the access-log row of every request under an API's paths."""

from __future__ import annotations

import logging
import time

from audit.services import access_log_record
from core.actors import ActorType
from core.apis import family_for_path, family_for_request
from core.net import client_ip
from core.time import utc_now

logger = logging.getLogger("audit")


class AccessLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        created_at = utc_now()
        response = self.get_response(request)
        # Every request under an API's paths (health probes and docs are not API traffic).
        family = family_for_request(request) if family_for_path(request.path) else None
        if family is not None:
            try:
                access_log_record(**self._fields(request, response, family, created_at, started))
            except Exception:  # the response is already decided; losing the row must be loud
                logger.exception("Access log write failed for %s %s", request.method, request.path)
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
            "organization_id": getattr(request, "audit_organization", "") or "",
            "method": request.method[:10],
            "path": request.path[:500],
            "subject_ids": getattr(request, "audit_subjects", []),
            "status_code": response.status_code,
            "ip": client_ip(request),
            "user_agent": request.headers.get("User-Agent", "")[:300],
            "request_id": getattr(request, "request_id", ""),
            "duration_ms": int((time.perf_counter() - started) * 1000),
        }
