"""Mark analytics API (spec: mark-assistant-api.md, "Analytics"): GET /api/v1/analytics/conversations,
/analytics/appointments and /analytics/patients. Read-only: every role that reads Mark (viewer too).

Thin views: the query parameters become a date range and an interval (patients/analytics.py, 400 naming
the parameter), the selectors (patients/analytics_queries.py) run a fixed number of SQL aggregates in the
clinic's time zone, patients/analytics.py shapes the body, the output serializer renders it.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response

from core.time import utc_now
from patients import analytics, analytics_queries, selectors
from patients.api import analytics_serializers as s
from patients.api.serializers import LANGUAGE_MAX
from patients.api.views import _filter, _MarkView, _schema

RANGE_PARAMETERS = [
    OpenApiParameter(
        "start_date",
        OpenApiTypes.STR,
        description=(
            "ISO 8601 date (from that day's midnight in the clinic's time zone) or date-time (an instant; no "
            "offset = UTC). Default: 29 days before end_date's day."
        ),
    ),
    OpenApiParameter(
        "end_date",
        OpenApiTypes.STR,
        description=(
            "ISO 8601 date (through the end of that day in the clinic's time zone) or date-time (inclusive). "
            "Default: today. Not before start_date; the range spans at most MARK_ANALYTICS_MAX_DAYS days."
        ),
    ),
    OpenApiParameter(
        "interval", OpenApiTypes.STR, enum=list(analytics.INTERVALS), description="Grouping interval (default day)"
    ),
]
ERRORS = (400, 401, 403, 404, 429)


class _AnalyticsView(_MarkView):
    def query(self, request) -> tuple[object, analytics.DateRange, str]:
        params = request.query_params
        organization = self.organization(request)
        interval = analytics.parse_interval(
            _filter(params, "interval", max_length=10, choices=list(analytics.INTERVALS))
        )
        start = analytics.parse_bound(_filter(params, "start_date", max_length=64), "start_date")
        end = analytics.parse_bound(_filter(params, "end_date", max_length=64), "end_date")
        time_zone = selectors.clinic_time_zone(organization=organization)
        period = analytics.resolve_range(
            start=start,
            end=end,
            today=utc_now().astimezone(time_zone).date(),
            time_zone=time_zone,
            max_days=settings.MARK_ANALYTICS_MAX_DAYS,
        )
        return organization, period, interval


class ConversationStatsView(_AnalyticsView):
    @_schema(
        "mark_analytics_conversations",
        "Conversation statistics (conversations that started in the range)",
        responses={200: s.ConversationStatsOutput},
        errors=ERRORS,
        parameters=[
            *RANGE_PARAMETERS,
            OpenApiParameter("language", OpenApiTypes.STR, description="Only conversations in this language, e.g. es"),
        ],
    )
    def get(self, request):
        organization, period, interval = self.query(request)
        language = _filter(request.query_params, "language", max_length=LANGUAGE_MAX)
        rows = analytics_queries.conversation_aggregates(
            organization=organization, period=period, interval=interval, language=language
        )
        body = analytics.conversation_stats(**rows, period=period, interval=interval)
        return Response(s.ConversationStatsOutput(body).data)


class AppointmentStatsView(_AnalyticsView):
    @_schema(
        "mark_analytics_appointments",
        "Appointment statistics (appointments that start in the range)",
        responses={200: s.AppointmentStatsOutput},
        errors=ERRORS,
        parameters=RANGE_PARAMETERS,
    )
    def get(self, request):
        organization, period, interval = self.query(request)
        rows = analytics_queries.appointment_aggregates(organization=organization, period=period, interval=interval)
        body = analytics.appointment_stats(
            **rows, statuses=[str(status) for status in analytics_queries.APPOINTMENT_STATUSES], period=period,
            interval=interval,
        )  # fmt: skip
        return Response(s.AppointmentStatsOutput(body).data)


class PatientStatsView(_AnalyticsView):
    @_schema(
        "mark_analytics_patients",
        "Patient statistics (registrations and engagement in the range)",
        responses={200: s.PatientStatsOutput},
        errors=ERRORS,
        parameters=RANGE_PARAMETERS,
    )
    def get(self, request):
        organization, period, interval = self.query(request)
        rows = analytics_queries.patient_aggregates(organization=organization, period=period, interval=interval)
        body = analytics.patient_stats(**rows, period=period, interval=interval)
        return Response(s.PatientStatsOutput(body).data)
