"""Rendering an ApiError in the body of the API that owns the request (core.apis), for the DRF
exception handler and core.middleware. Separate from core.errors so that core.apis, which declares each
API's envelope in terms of ApiError, and core.errors import each other in one direction only."""

from __future__ import annotations

from django.http import JsonResponse
from rest_framework.views import exception_handler as drf_default_exception_handler

from core.apis import family_for_request
from core.context import note_refusal
from core.errors import ApiError, api_error_from_exception, log_unhandled


def render_api_error(request, error: ApiError, family=None) -> JsonResponse:
    family = family or family_for_request(request)
    body = family.render(request, error)
    note_refusal(request, family.code(error))
    response = JsonResponse(body, status=error.status, json_dumps_params={"ensure_ascii": False})
    for name, value in error.headers.items():
        response[name] = value
    return response


def api_exception_handler(exc, context):
    """DRF EXCEPTION_HANDLER: every error raised in an API view, in its API's envelope."""
    request = context["request"]
    drf_response = drf_default_exception_handler(exc, context)
    error = api_error_from_exception(exc)
    if error.status >= 500:
        log_unhandled(request, exc)
    if drf_response is not None:
        for name in ("WWW-Authenticate", "Retry-After", "Allow"):
            if name in drf_response and name not in error.headers:
                error.headers[name] = drf_response[name]
    view = context.get("view")
    family = getattr(view, "api_family", None)
    return render_api_error(request._request if hasattr(request, "_request") else request, error, family)
