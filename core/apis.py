"""The five APIs, declared once each: which paths they own, their error body and their rate limits.

A view belongs to exactly one API (`api_family` on the view, set by `core.api.ApiView` subclasses);
a request that resolves to no view (unknown path) takes the API owning the longest matching prefix.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import DEFAULT_CODES, ApiError
from core.ratelimit import (
    FailureLimits,
    Rate,
    RatePolicy,
    RateUsage,
    Stage,
    key_ip,
    key_principal,
    key_user,
    key_user_or_ip,
)
from core.time import iso_utc, iso_utc_from_epoch, utc_now

MINUTE, HOUR, DAY = 60, 3600, 86400


@dataclass(frozen=True)
class ApiFamily:
    name: str
    tag: str  # OpenAPI tag
    prefixes: tuple[str, ...]
    render: Callable[[object, ApiError], dict]
    rate_policy: RatePolicy | None
    # How X-RateLimit-Reset is written: "iso" (LoveRescue) or "epoch".
    reset_format: str = "epoch"
    # Routiq's spec lists Retry-After among the headers of every response.
    retry_after_always: bool = False
    upper_codes: bool = False
    # Status -> code where the spec names one (LoveRescue's 401 is AUTH_FAILED); else DEFAULT_CODES.
    status_codes: tuple[tuple[int, str], ...] = ()
    # Failed credential checks allowed per client address / per claimed account before a 429
    # (core.ratelimit.failure_guard); None: the API checks no credentials.
    auth_failures: FailureLimits | None = None
    # Paths that resolve to no view but are this API's by shape (regexes, checked before the prefixes).
    unresolved_patterns: tuple[str, ...] = ()

    def code(self, error: ApiError) -> str:
        code = error.code or dict(self.status_codes).get(error.status) or DEFAULT_CODES.get(error.status, "error")
        return code.upper() if self.upper_codes else code

    def rate_headers(self, usage: RateUsage) -> dict[str, str]:
        reset = iso_utc_from_epoch(usage.reset_at) if self.reset_format == "iso" else str(usage.reset_at)
        headers = {
            "X-RateLimit-Limit": str(usage.limit),
            "X-RateLimit-Remaining": str(usage.remaining),
            "X-RateLimit-Reset": reset,
        }
        if self.retry_after_always or usage.limited:
            headers["Retry-After"] = str(usage.retry_after)
        return headers


def _retry_after(error: ApiError) -> int:
    return int(error.headers.get("Retry-After", "60"))


# --- Error bodies, exactly as each spec shows them ------------------------------------------------


def _render_loverescue(request, error: ApiError) -> dict:
    # Spec: {"error": msg, "code": CODE}; 429 adds "retryAfter" (seconds).
    body = {"error": error.message, "code": LOVERESCUE.code(error)}
    if error.status == 429:
        body["retryAfter"] = _retry_after(error)
    if error.details is not None:
        body["details"] = error.details
    return body


def _render_mark(request, error: ApiError) -> dict:
    # Spec: {"error": {"code", "message", "details"}}
    details = error.details
    if error.status == 429 and details is None:
        details = f"Try again in {_retry_after(error)} seconds."
    return {"error": {"code": MARK.code(error), "message": error.message, "details": details}}


def _render_careos(request, error: ApiError) -> dict:
    # Spec: {"error": msg}
    return {"error": error.message}


def _render_therapist(request, error: ApiError) -> dict:
    # Spec: {"error", "code", "details": {"field": "Error details"}}: one string per field, the field named by its
    # JSON path ("progressMetrics.activeTime", "snapshots[3].timestamp"), whatever layer found the error.
    details = error.details or {}
    return {"error": error.message, "code": THERAPIST.code(error), "details": field_messages(details)}


def field_messages(details, prefix: str = "") -> dict | object:
    """Nested validation errors (DRF's dicts of lists, lists of per-item dicts, {index: errors} of list fields)
    as {"json.path[i].field": "message; message"}; anything that is not a dict or list is left as it is."""
    if not isinstance(details, dict | list):
        return details
    flat: dict[str, str] = {}

    def walk(value, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key)))
        elif isinstance(value, list) and value and all(not isinstance(item, dict | list) for item in value):
            flat[path or "non_field_errors"] = "; ".join(str(item) for item in value)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if item:
                    walk(item, f"{path}[{index}]")
        else:
            flat[path or "non_field_errors"] = str(value)

    walk(details, prefix)
    return flat


_ROUTIQ_TYPES = {
    400: "Validation error",
    401: "Authentication failed",
    403: "Access denied",
    404: "Not found",
    405: "Method not allowed",
    415: "Unsupported media type",
    429: "Rate limit exceeded",
    500: "Internal server error",
}


def _render_routiq(request, error: ApiError) -> dict:
    # Spec: {"error": type, "detail": message, "timestamp", "path"}; 429 adds "rate_limit".
    body = {
        "error": _ROUTIQ_TYPES.get(error.status, "Error"),
        "detail": error.message,
        "timestamp": iso_utc(utc_now()),
        "path": request.path,
    }
    if error.status == 429:
        retry_after = _retry_after(error)
        body["detail"] = f"Too many requests. Try again in {retry_after} seconds."
        usage = getattr(request, "ratelimit_usage", None)
        body["rate_limit"] = {
            "limit": usage.limit if usage else 0,
            "remaining": 0,
            "reset_time": usage.reset_at if usage else 0,
            "retry_after": retry_after,
        }
    return body


# --- Rate policies (DESIGN.md) ----------------------------------------------------------------------


def _partner_limit(request) -> int | None:
    # Set by the LoveRescue authentication from the partner's own configured limit.
    return getattr(request, "ratelimit_override", None)


# Per API key only, as the spec says: a per-IP ceiling would cap partners whose own limit is higher
# (they call from one server). The token exchange view adds its own per-IP limit against guessing.
LOVERESCUE_RATES = RatePolicy("loverescue", (Rate("key", 100, MINUTE, key_principal, limit_override=_partner_limit),))
# The token exchange: per client IP before the credentials are checked (against guessing), and the
# partner's per-key budget does not apply (the key is not yet proven).
LOVERESCUE_AUTH_RATES = RatePolicy("loverescue-auth", (Rate("ip", 30, MINUTE, key_ip, Stage.BEFORE_AUTH),))
MARK_RATES = RatePolicy(
    "mark",
    (
        Rate("ip", 60, MINUTE, key_ip, Stage.BEFORE_AUTH),
        Rate("credential", 1000, DAY, key_principal),
    ),
)
CAREOS_RATES = RatePolicy("careos", (Rate("partner", 100, MINUTE, key_principal),))
THERAPIST_RATES = RatePolicy(
    "therapist",
    (
        Rate("user-minute", 100, MINUTE, key_user),
        Rate("user-hour", 1000, HOUR, key_user),
    ),
)
# `/`, the schema and the docs: fail open when Redis is down (they serve nothing secret, and the API's
# front page should not die with the cache). `/health` has no limit at all (EXEMPT_RATES).
ROUTIQ_PUBLIC_RATES = RatePolicy(
    "routiq-public", (Rate("ip", 100, 15 * MINUTE, key_ip, Stage.BEFORE_AUTH, fail_open=True),)
)
ROUTIQ_API_RATES = RatePolicy("routiq-api", (Rate("client", 1000, 15 * MINUTE, key_user_or_ip),))
ROUTIQ_SYNC_RATES = RatePolicy("routiq-sync", (Rate("client", 100, 15 * MINUTE, key_user_or_ip),))
ROUTIQ_ADMIN_RATES = RatePolicy("routiq-admin", (Rate("client", 50, 15 * MINUTE, key_user_or_ip),))
# Liveness (`/health`): a load balancer probes it every few seconds; it is never limited and needs no Redis.
EXEMPT_RATES = RatePolicy("exempt", ())

# --- Failed authentication (core.ratelimit.failure_guard), per API -----------------------------------------
# Per client address: `per_ip` failed checks per 15 minutes, then 429 for whatever that address sends, even
# the right credential. Per claimed account (LoveRescue key id, CareOS platform, platform username): after
# `per_account` failures, refused only from addresses that never authenticated the account. `per_account`
# is above `per_ip`, so one address alone can never get an account refused anywhere. Bearer tokens name no
# account (their claims mean nothing until the signature is checked): per address only. A genuine token
# that has only expired is not a failure. Passwords (the platform token) get the tighter numbers.
LOVERESCUE_FAILURES = FailureLimits("loverescue", per_ip=20, per_account=50, period_seconds=15 * MINUTE)
MARK_FAILURES = FailureLimits("mark", per_ip=10, per_account=30, period_seconds=15 * MINUTE)
CAREOS_FAILURES = FailureLimits("careos", per_ip=20, per_account=50, period_seconds=15 * MINUTE)
THERAPIST_FAILURES = FailureLimits("therapist", per_ip=20, per_account=50, period_seconds=15 * MINUTE)
ROUTIQ_FAILURES = FailureLimits("routiq", per_ip=20, per_account=50, period_seconds=15 * MINUTE)


LOVERESCUE = ApiFamily(
    name="loverescue",
    tag="LoveRescue",
    prefixes=("/api/integration/", "/api/app/"),
    render=_render_loverescue,
    rate_policy=LOVERESCUE_RATES,
    reset_format="iso",
    upper_codes=True,
    status_codes=((401, "AUTH_FAILED"), (429, "RATE_LIMITED"), (403, "FORBIDDEN")),
    auth_failures=LOVERESCUE_FAILURES,
)
MARK = ApiFamily(
    name="mark",
    tag="Mark",
    prefixes=("/api/v1/",),
    render=_render_mark,
    rate_policy=MARK_RATES,
    auth_failures=MARK_FAILURES,
)
CAREOS = ApiFamily(
    name="careos",
    tag="CareOS",
    prefixes=("/api/leads/",),
    render=_render_careos,
    rate_policy=CAREOS_RATES,
    auth_failures=CAREOS_FAILURES,
)
THERAPIST = ApiFamily(
    name="therapist",
    tag="Therapist dashboard",
    # "/api/session" without a slash: the added session collection (POST/GET /api/session) is this API too.
    prefixes=("/api/session", "/api/evaluation"),
    render=_render_therapist,
    rate_policy=THERAPIST_RATES,
    upper_codes=True,
    # Every 400 is a validation error whichever layer found it (serializer, selector, service), unless it names
    # its own code (MISSING_PARAMETER, INVALID_TIME_RANGE, SNAPSHOT_LIMIT).
    status_codes=((400, "VALIDATION_ERROR"),),
    auth_failures=THERAPIST_FAILURES,
)
ROUTIQ = ApiFamily(
    name="routiq",
    tag="Routiq",
    prefixes=(
        "/api/v1/auth/verify",
        "/api/v1/auth/organization/",
        "/api/v1/patients/org_",
        "/api/v1/dashboard/",
        "/api/v1/sync/",
        "/api/v1/cliniko/",
        "/api/v1/admin/",
    ),
    render=_render_routiq,
    rate_policy=ROUTIQ_API_RATES,
    retry_after_always=True,
    auth_failures=ROUTIQ_FAILURES,
    # Under Mark's /api/v1/patients/ a path with segments after an id that is not Mark's (pat_...) is
    # Routiq's shape: a malformed organization id there is answered in Routiq's body.
    unresolved_patterns=(r"/api/v1/patients/(?!pat_)[^/]+/.",),
)


def _render_platform(request, error: ApiError) -> dict:
    return {"error": error.message, "code": PLATFORM.code(error)}


# Platform endpoints that belong to no partner API: vendor callbacks (Twilio status, ...).
PLATFORM_RATES = RatePolicy("platform", (Rate("ip", 600, MINUTE, key_ip, Stage.BEFORE_AUTH),))
PLATFORM = ApiFamily(
    name="platform",
    tag="Platform",
    prefixes=("/api/messaging/", "/api/webhooks/"),
    render=_render_platform,
    rate_policy=PLATFORM_RATES,
)

FAMILIES: tuple[ApiFamily, ...] = (LOVERESCUE, MARK, CAREOS, THERAPIST, ROUTIQ, PLATFORM)
_PREFIX_INDEX = sorted(
    ((prefix, family) for family in FAMILIES for prefix in family.prefixes), key=lambda item: -len(item[0])
)


_PATTERN_INDEX = [(re.compile(pattern), family) for family in FAMILIES for pattern in family.unresolved_patterns]


def family_for_path(path: str) -> ApiFamily | None:
    """The API owning the longest declared prefix of `path` (or one of its unresolved patterns, first),
    or None (admin, docs, health)."""
    for pattern, family in _PATTERN_INDEX:
        if pattern.match(path):
            return family
    for prefix, family in _PREFIX_INDEX:
        if path.startswith(prefix):
            return family
    return None


def family_for_request(request) -> ApiFamily | None:
    """The resolved view's API when there is one (the envelope follows the route), else by prefix."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        view_class = getattr(match.func, "cls", None) or getattr(match.func, "view_class", None)
        family = getattr(view_class, "api_family", None) or getattr(match.func, "api_family", None)
        if family is not None:
            return family
    return family_for_path(request.path)
