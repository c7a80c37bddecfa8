"""Partner API inputs: request bodies (serializers, through core.validation.validated) and query
parameters. Every refusal is a core.domain.Invalid with code BAD_REQUEST whose message names the field."""

from __future__ import annotations

from datetime import datetime

from rest_framework import serializers

from core.domain import Invalid
from core.pagination import parse_int_param
from core.serializers import DATE_ONLY_INPUT_FORMATS, StrictCharField, StrictSlugField
from core.time import parse_instant
from integration.events import EVENT_TYPES
from integration.models import AlertType, TherapistTask
from integration.selectors import common
from integration.selectors.alerts import AlertFilters

ALERT_TYPES = tuple(AlertType.values)
MAX_ALERT_LIMIT = 500
DEFAULT_ALERT_LIMIT = 100
BAD_REQUEST = "BAD_REQUEST"


class BadParameter(Invalid):
    """A query parameter is invalid; the message names it."""

    def __init__(self, message: str):
        super().__init__(message, code=BAD_REQUEST)


def _boolean(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise BadParameter(f"{name} must be true or false")


def alert_filters_from_query(params) -> AlertFilters:
    """GET /alerts query parameters -> AlertFilters; BadParameter names the first bad one."""
    alert_type = params.get("type")
    if alert_type is not None and alert_type not in ALERT_TYPES:
        raise BadParameter(f"type must be one of {', '.join(ALERT_TYPES)}")
    unread_only = _boolean("unreadOnly", params["unreadOnly"]) if "unreadOnly" in params else False
    since = None
    if "since" in params:
        since = parse_instant(params["since"])
        if since is None:
            raise BadParameter("since must be an ISO 8601 date or datetime")
    limit = parse_int_param(
        params, "limit", default=DEFAULT_ALERT_LIMIT, minimum=1, maximum=MAX_ALERT_LIMIT, code=BAD_REQUEST
    )
    return AlertFilters(alert_type=alert_type, unread_only=unread_only, since=since, limit=limit)


def last_session_date_from_query(params) -> datetime | None:
    """`lastSessionDate` (optional): ISO 8601, not in the future."""
    if "lastSessionDate" not in params:
        return None
    parsed = parse_instant(params["lastSessionDate"])
    if parsed is None:
        raise BadParameter("lastSessionDate must be an ISO 8601 date or datetime")
    if parsed > common.utc_now():
        raise BadParameter("lastSessionDate must not be in the future")
    return parsed


class AssignRequestSerializer(serializers.Serializer):
    taskDescription = StrictCharField(max_length=2000)
    module = StrictSlugField(max_length=100, required=False, allow_blank=True)
    activities = serializers.ListField(
        child=StrictCharField(max_length=100), max_length=50, required=False, default=list
    )
    notes = StrictCharField(max_length=5000, required=False, allow_blank=True, allow_null=True)
    dueDate = serializers.DateField(required=False, allow_null=True, input_formats=DATE_ONLY_INPUT_FORMATS)
    priority = serializers.ChoiceField(
        choices=TherapistTask.Priority.values, required=False, default=TherapistTask.Priority.MEDIUM
    )

    def validate_dueDate(self, value):
        if value is not None and value < common.today_utc():
            raise serializers.ValidationError("must not be in the past")
        return value


class WebhookRegisterRequestSerializer(serializers.Serializer):
    webhookUrl = StrictCharField(max_length=2000)
    events = serializers.ListField(child=StrictCharField(max_length=100), allow_empty=False, max_length=10)

    def validate_events(self, value):
        unknown = [event for event in value if event not in EVENT_TYPES]
        if unknown:
            raise serializers.ValidationError(f"unknown event type {unknown[0]!r}; allowed: {', '.join(EVENT_TYPES)}")
        return list(dict.fromkeys(value))  # de-duplicated, in the caller's order
