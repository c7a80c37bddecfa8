"""Twilio's request signature, checked the same way by every Twilio webhook we serve (the message status
callback, the WhatsApp inbound webhook): HMAC-SHA1 under TWILIO_AUTH_TOKEN over the URL Twilio was given
(rebuilt from configuration, never from the Host header or X-Forwarded-*) plus the POST parameters."""

from __future__ import annotations

import logging

from django.conf import settings

from core.errors import ApiError
from messaging import clients

logger = logging.getLogger("messaging")


def require_twilio_signature(request, *, url: str, what: str) -> None:
    """403 (and a log line naming `what`, never the parameters) unless the request carries a valid
    `X-Twilio-Signature` for `url`; also 403 while the URL or the auth token is not configured."""
    token = settings.TWILIO_AUTH_TOKEN
    signature = request.headers.get("X-Twilio-Signature", "")
    if not url or not token:
        logger.warning("twilio %s refused: webhook URL or auth token not configured", what)
        raise ApiError(403, f"Twilio {what} is not configured", code="not_configured")
    if not clients.signature_is_valid(token, url, request.data, signature):
        logger.warning("twilio %s refused: %s signature", what, "bad" if signature else "missing")
        raise ApiError(403, "Invalid Twilio signature", code="invalid_signature")
