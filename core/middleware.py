"""Request id, API error envelopes outside DRF, and rate-limit headers on API responses."""

from __future__ import annotations

import re
import uuid

from core.apis import family_for_request
from core.context import request_id_var
from core.envelopes import render_api_error
from core.errors import ApiError, api_error_from_exception, log_unhandled

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,128}$")


class RequestIdMiddleware:
    """Take a well-formed X-Request-ID from the caller or make one; echo it on the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request.request_id
        return response


def _is_json(response) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip() == "application/json"


class ApiErrorMiddleware:
    """Under an API's paths nothing leaves as a Django HTML page: unknown paths (404), CSRF failures,
    405 from plain views and exceptions raised outside DRF are re-rendered in that API's envelope.
    Also writes the API's rate-limit headers from the usage the request was counted against, and
    `Cache-Control: no-store` on every API response that does not set its own."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        family = family_for_request(request)
        if family is None:
            return response
        if response.status_code >= 400 and not _is_json(response):
            error = ApiError(response.status_code)
            for name in ("Allow", "Retry-After", "WWW-Authenticate"):
                if name in response:
                    error.headers[name] = response[name]
            response = render_api_error(request, error, family)
        usage = getattr(request, "ratelimit_usage", None)
        if usage is not None:
            for name, value in family.rate_headers(usage).items():
                response[name] = value
        # API answers are for one caller and often carry protected data or secrets (tokens, webhook
        # secrets): no browser, proxy or CDN may keep a copy. A view that sets its own policy keeps it.
        if "Cache-Control" not in response:
            response["Cache-Control"] = "no-store"
        return response

    def process_exception(self, request, exception):
        family = family_for_request(request)
        if family is None:
            return None
        error = api_error_from_exception(exception)
        if error.status >= 500:
            log_unhandled(request, exception)
        return render_api_error(request, error, family)
