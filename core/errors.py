"""One error-envelope mechanism for every API.

A failure anywhere under an API's paths becomes an `ApiError` (status, code, message, details) and is
rendered by that API's `ApiFamily.render`. Three entry points feed it: DRF's exception handler (errors
raised in API views), and `core.middleware.ApiErrorMiddleware` for exceptions outside DRF and for
non-JSON error responses (unknown paths, CSRF, 405 from plain views).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import SuspiciousOperation
from django.http import Http404
from rest_framework import exceptions as drf_exceptions

from core import domain

logger = logging.getLogger("core.errors")

DEFAULT_MESSAGES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Access denied",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Request entity too large",
    415: "Unsupported media type",
    429: "Rate limit exceeded",
    500: "Internal server error",
    503: "Service unavailable",
}

DEFAULT_CODES = {
    400: "invalid_request",
    401: "authentication_failed",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


@dataclass
class ApiError(Exception):
    """Raise from a view (or build from any failure) to answer in the caller's API envelope.

    `code` is optional: each API maps the status to its own default code (e.g. LoveRescue `AUTH_FAILED`).
    """

    status: int
    message: str = ""
    code: str | None = None
    details: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.message:
            self.message = DEFAULT_MESSAGES.get(self.status, "Error")
        super().__init__(self.message)


def flatten_errors(detail: Any) -> str:
    """DRF errors -> "field: message; other: message" (nested and list fields flattened)."""
    if isinstance(detail, dict):
        parts = []
        for name, errors in detail.items():
            text = flatten_errors(errors)
            parts.append(text if name == "non_field_errors" else f"{name}: {text}")
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(flatten_errors(item) for item in detail)
    return str(detail)


def first_error(errors: dict) -> str:
    """The first bad field only: "field: message", or "items[2]: message" for an item of a list field."""
    name, problems = next(iter(errors.items()))
    if isinstance(problems, dict):
        index, inner = next(iter(problems.items()))
        return f"{name}[{index}]: {' '.join(str(p) for p in inner)}"
    text = " ".join(str(p) for p in problems) if isinstance(problems, list) else str(problems)
    return text if name == "non_field_errors" else f"{name}: {text}"


def _flatten_validation(detail: Any) -> tuple[str, Any]:
    """DRF validation detail -> (one readable sentence, structured details)."""
    if isinstance(detail, dict):
        return flatten_errors(detail) or "Invalid request", detail
    if isinstance(detail, list):
        return flatten_errors(detail) or "Invalid request", None
    return str(detail), None


# Services raise domain errors (core.domain); this is the one place that gives them an HTTP status.
DOMAIN_ERROR_STATUS: tuple[tuple[type[domain.DomainError], int], ...] = (
    (domain.Invalid, 400),
    (domain.AuthenticationFailed, 401),
    (domain.PermissionDenied, 403),
    (domain.NotFound, 404),
    (domain.Conflict, 409),
    (domain.Unavailable, 503),
)


def api_error_from_domain(exc: domain.DomainError) -> ApiError:
    status = next((status for kind, status in DOMAIN_ERROR_STATUS if isinstance(exc, kind)), 400)
    return ApiError(status, exc.message, code=exc.code, details=exc.details)


def api_error_from_exception(exc: BaseException) -> ApiError:
    """Map any exception to an ApiError. Unknown exceptions are a 500 with no internals."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, domain.DomainError):
        return api_error_from_domain(exc)
    if isinstance(exc, drf_exceptions.ValidationError):
        message, details = _flatten_validation(exc.detail)
        return ApiError(400, message, details=details)
    if isinstance(exc, drf_exceptions.Throttled):
        return ApiError(429, headers={"Retry-After": str(int(exc.wait or 0))})
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return ApiError(405, str(exc.detail))
    if isinstance(exc, drf_exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else None
        if isinstance(exc.detail, dict) and "detail" in exc.detail:  # simplejwt: {"detail", "code", ...}
            message, code = str(exc.detail["detail"]), str(exc.detail.get("code", "")) or None
        else:
            message = str(exc.detail) if not isinstance(exc.detail, (dict, list)) else None
        return ApiError(exc.status_code, message or "", code=_drf_code(code, exc.status_code))
    if isinstance(exc, Http404):
        return ApiError(404)
    if isinstance(exc, DjangoPermissionDenied):
        return ApiError(403)
    if isinstance(exc, SuspiciousOperation):
        return ApiError(400)
    return ApiError(500)


def _drf_code(code: str | None, status: int) -> str | None:
    # DRF's generic codes duplicate our per-status defaults; keep only specific ones (e.g. token_not_valid).
    generic = {
        "invalid",
        "error",
        "not_authenticated",
        "permission_denied",
        "not_found",
        "parse_error",
        "method_not_allowed",
        "unsupported_media_type",
        "throttled",
        "authentication_failed",
        "not_acceptable",
    }
    if code is None or code in generic:
        return None
    return code


def log_unhandled(request, exc: BaseException) -> None:
    # Path and method only: request bodies and query strings may carry PHI.
    logger.error("Unhandled error on %s %s", request.method, request.path, exc_info=exc)
