"""Partner API views (spec: loverescue-integration-api.md, section 2).

Each view is thin: validate the request, call a selector or service scoped to the therapist the token
acts for (`request.user.therapist`), render. Consent is read from the database on every request:

- unknown client / couple / alert -> 404 NOT_FOUND;
- unlinked, unconsented or revoked link (including another therapist's client and the clients of another
  partner's therapists) -> 403 NO_CONSENT "Client has not granted consent to this therapist";
- permission level below what the endpoint needs -> 403 INSUFFICIENT_PERMISSION.

Every view tells the access log which clients the response touched (`note_subjects`); a refused request
for an existing client is logged with that client's id too (the attempt is part of the audit trail).
"""

from __future__ import annotations

from datetime import UTC, datetime

from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework.response import Response

from audit.context import note_subjects
from core.apis import LOVERESCUE
from core.errors import ApiError
from core.schema import error_responses
from core.time import iso_utc
from integration import selectors
from integration.api import partner_serializers as s
from integration.api.base import PartnerApiView
from integration.events import OWNER_TYPE
from integration.models import PermissionLevel
from integration.services.assignments import alert_mark_read, task_assign
from integration.services.reports import ReportInvalid, session_prep_report_generate
from webhooks.models import Scheme
from webhooks.services import WebhookEndpointInvalid, webhook_endpoint_register

TAGS = [LOVERESCUE.tag]


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, code="BAD_REQUEST")


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found", code="NOT_FOUND")


def no_consent() -> ApiError:
    return ApiError(403, selectors.NO_CONSENT_MESSAGE, code="NO_CONSENT")


def consented_link(request, client_id, required_level: str = PermissionLevel.BASIC):
    """The therapist's consented link to the client at `required_level`, or the API's 404/403."""
    try:
        link = selectors.client_link_for(
            therapist=request.user.therapist, client_id=client_id, required_level=required_level
        )
    except selectors.ClientNotFound:
        raise not_found("Client") from None
    except selectors.NoConsent:
        note_subjects(request, "client", [client_id])
        raise no_consent() from None
    except selectors.LevelTooLow:
        note_subjects(request, "client", [client_id])
        raise ApiError(403, selectors.LEVEL_TOO_LOW_MESSAGE, code="INSUFFICIENT_PERMISSION") from None
    note_subjects(request, "client", [client_id])
    return link


def validated(serializer_class, data):
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        message, _ = _first_error(serializer.errors)
        raise bad_request(message)
    return serializer.validated_data


def _first_error(errors) -> tuple[str, str]:
    name, problems = next(iter(errors.items()))
    if isinstance(problems, dict):  # a list field: {index: [messages]}
        index, inner = next(iter(problems.items()))
        return f"{name}[{index}]: {' '.join(str(p) for p in inner)}", name
    text = " ".join(str(p) for p in problems) if isinstance(problems, list) else str(problems)
    if name == "non_field_errors":
        return text, name
    return f"{name}: {text}", name


class ClientListView(PartnerApiView):
    """The therapist's clients with consent in force (revoked or never-consented links are left out)."""

    @extend_schema(
        tags=TAGS,
        operation_id="integration_clients_list",
        responses={200: s.ClientListResponseSerializer, **error_responses(LOVERESCUE, 401, 403, 429)},
        description=(
            "`latestMood` is null below STANDARD. In `couple`, a member who has not consented to this "
            "therapist is shown as `{id, withheld: true}` without names. `unreadAlerts` counts the alerts "
            "visible at the client's level that this therapist has not read."
        ),
    )
    def get(self, request):
        clients = selectors.client_list(therapist=request.user.therapist)
        note_subjects(request, "client", [c["id"] for c in clients])
        return Response({"clients": clients, "total": len(clients)})


class ClientProgressView(PartnerApiView):
    """Assessment scores, activity completion (90 days ending today UTC) and course progress at every
    level; STANDARD adds moodTrends and ratioTrends (90 days; `ratio` is null when negative is 0); FULL
    adds individualResponses and journalEntries (90 days, therapist-hidden entries never). Keys above
    the client's level are absent, not null."""

    @extend_schema(
        tags=TAGS,
        operation_id="integration_client_progress",
        responses={200: s.ProgressResponseSerializer, **error_responses(LOVERESCUE, 401, 403, 404, 429)},
    )
    def get(self, request, client_id):
        link = consented_link(request, client_id)
        return Response(selectors.client_progress(therapist=request.user.therapist, link=link))


class SessionPrepView(PartnerApiView):
    """Generate (and persist) a session preparation report; STANDARD or FULL only.

    `lastSessionDate` is optional (ISO 8601 date or datetime, UTC when no offset; not in the future);
    without it the report covers the time since the previous report, else the last 7 days."""

    @extend_schema(
        tags=TAGS,
        operation_id="integration_client_session_prep",
        parameters=[
            OpenApiParameter(
                "lastSessionDate",
                OpenApiTypes.DATETIME,
                OpenApiParameter.QUERY,
                required=False,
                description="Anchor for 'since last session' data (ISO 8601, not in the future)",
            )
        ],
        responses={200: s.SessionPrepResponseSerializer, **error_responses(LOVERESCUE, 400, 401, 403, 404, 429)},
    )
    def get(self, request, client_id):
        link = consented_link(request, client_id, PermissionLevel.STANDARD)
        try:
            last_session_date = s.last_session_date_from_query(request.query_params)
        except s.BadParameter as exc:
            raise bad_request(str(exc)) from None
        partner = request.user.partner
        try:
            report = session_prep_report_generate(
                therapist=request.user.therapist,
                client=link.client,
                last_session_date=last_session_date,
                now=selectors.utc_now(),
                actor_type="integration_partner",
                actor_id=str(partner.pk),
            )
        except ReportInvalid as exc:
            raise bad_request(str(exc)) from None
        return Response({"report": selectors.report_body(report)})


class AssignView(PartnerApiView):
    """Assign a task (module / activities) to the client; any consented level (BASIC or above).

    `dueDate` is `YYYY-MM-DD`, today or later (UTC); it is returned as midnight UTC
    (`2026-02-19T00:00:00.000Z`) as the spec shows. `priority` is low, medium (default) or high."""

    @extend_schema(
        tags=TAGS,
        operation_id="integration_client_assign",
        request=s.AssignRequestSerializer,
        responses={201: s.AssignResponseSerializer, **error_responses(LOVERESCUE, 400, 401, 403, 404, 429)},
    )
    def post(self, request, client_id):
        link = consented_link(request, client_id)
        data = validated(s.AssignRequestSerializer, request.data)
        principal = request.user
        task = task_assign(
            therapist=principal.therapist,
            client=link.client,
            partner=principal.partner,
            description=data["taskDescription"],
            module=data.get("module") or "",
            activities=data.get("activities") or [],
            notes=data.get("notes") or None,
            due_date=data.get("dueDate"),
            priority=data["priority"],
        )
        due = task.due_date
        return Response(
            {
                "message": "Activity assigned",
                "task": {
                    "id": str(task.pk),
                    "description": task.description,
                    "priority": task.priority,
                    "dueDate": iso_utc(datetime(due.year, due.month, due.day, tzinfo=UTC)) if due else None,
                    "createdAt": iso_utc(task.created_at),
                },
            },
            status=201,
        )


class CoupleDynamicsView(PartnerApiView):
    """Both partners side by side. A side is shown only if that partner has a consented link to this
    therapist, else `{"withheld": true, "reason": ...}`; `consent` says which sides are shown. `moodAvg`
    (30 days) only for a side at STANDARD or FULL. Matchups (latest first, at most 10) and the couple
    profile combine both partners' data, so they are returned only when both consented (else `[]` and
    null). 403 NO_CONSENT when neither partner consented to this therapist."""

    @extend_schema(
        tags=TAGS,
        operation_id="integration_couple_dynamics",
        responses={200: s.DynamicsResponseSerializer, **error_responses(LOVERESCUE, 401, 403, 404, 429)},
    )
    def get(self, request, couple_id):
        try:
            body, shown = selectors.couple_dynamics(therapist=request.user.therapist, couple_id=couple_id)
        except selectors.ClientNotFound:
            raise not_found("Couple") from None
        except selectors.NoConsent:
            raise no_consent() from None
        note_subjects(request, "client", shown)
        return Response(body)


class AlertListView(PartnerApiView):
    """Alerts this therapist may see now: those of clients consented to them at the alert's level
    (CRISIS and RISK need STANDARD; MILESTONE and STAGNATION BASIC). `total` and `unreadCount` count
    every alert matching the filters, ignoring `limit`. A bad parameter is a 400 naming it."""

    @extend_schema(
        tags=TAGS,
        operation_id="integration_alerts_list",
        parameters=[
            OpenApiParameter("type", OpenApiTypes.STR, enum=list(s.ALERT_TYPES), required=False),
            OpenApiParameter("unreadOnly", OpenApiTypes.BOOL, required=False, description="true/false/1/0"),
            OpenApiParameter(
                "since", OpenApiTypes.DATETIME, required=False, description="Alerts created after this instant"
            ),
            OpenApiParameter("limit", OpenApiTypes.INT, required=False, description="1..500, default 100"),
        ],
        responses={200: s.AlertListResponseSerializer, **error_responses(LOVERESCUE, 400, 401, 403, 429)},
    )
    def get(self, request):
        try:
            filters = s.alert_filters_from_query(request.query_params)
        except s.BadParameter as exc:
            raise bad_request(str(exc)) from None
        alerts, total, unread = selectors.alert_list(therapist=request.user.therapist, filters=filters)
        note_subjects(request, "client", list(dict.fromkeys(str(a.client_id) for a in alerts)))
        return Response({"alerts": [selectors.alert_body(a) for a in alerts], "unreadCount": unread, "total": total})


class AlertReadView(PartnerApiView):
    """Extension to the spec: mark an alert read for this therapist (idempotent; the first read time is
    kept). Each therapist has their own read state. 404 for an unknown alert or one this therapist may
    not see (client not consented, or below the alert's level)."""

    @extend_schema(
        tags=TAGS,
        operation_id="integration_alert_read",
        request={"application/json": OpenApiTypes.OBJECT},  # no fields: empty or {}
        responses={200: s.AlertReadResponseSerializer, **error_responses(LOVERESCUE, 401, 403, 404, 429)},
    )
    def post(self, request, alert_id):
        principal = request.user
        try:
            alert = selectors.visible_alert(therapist=principal.therapist, alert_id=alert_id)
        except selectors.ClientNotFound:
            raise not_found("Alert") from None
        recipient = alert_mark_read(alert=alert, therapist=principal.therapist, partner=principal.partner)
        alert.read_at = recipient.read_at
        note_subjects(request, "client", [alert.client_id])
        return Response({"alert": selectors.alert_body(alert)})


class OutcomesView(PartnerApiView):
    """Caseload outcomes over clients with consent in force. `activeInCourse`: course active and not
    completed; `avgCourseWeek`: mean current week of clients with a course (1 decimal, null when none).
    CRISIS alerts are STANDARD data, so `crisisAlerts` is 0 for BASIC clients."""

    @extend_schema(
        tags=TAGS,
        operation_id="integration_outcomes",
        responses={200: s.OutcomesResponseSerializer, **error_responses(LOVERESCUE, 401, 403, 429)},
    )
    def get(self, request):
        result = selectors.outcomes(therapist=request.user.therapist)
        note_subjects(request, "client", [c["clientId"] for c in result["clients"]])
        return Response({"outcomes": result})


class WebhookRegisterView(PartnerApiView):
    """Register the partner's webhook (one per partner: registering again replaces the previous one and
    cancels its pending deliveries). The URL must be https and resolve only to public addresses. The
    secret is returned once."""

    @extend_schema(
        tags=TAGS,
        operation_id="integration_webhook_register",
        request=s.WebhookRegisterRequestSerializer,
        responses={200: s.WebhookRegisterResponseSerializer, **error_responses(LOVERESCUE, 400, 401, 403, 429)},
    )
    def post(self, request):
        data = validated(s.WebhookRegisterRequestSerializer, request.data)
        partner = request.user.partner
        try:
            endpoint, secret = webhook_endpoint_register(
                owner_type=OWNER_TYPE,
                owner_id=str(partner.pk),
                url=data["webhookUrl"],
                events=data["events"],
                scheme=Scheme.LOVERESCUE,
                replace_existing=True,
                actor_type="integration_partner",
                actor_id=str(partner.pk),
            )
        except WebhookEndpointInvalid as exc:
            raise bad_request(exc.messages[0] if exc.messages else "Invalid webhook registration") from None
        return Response(
            {
                "message": "Webhook registered successfully",
                "webhookUrl": endpoint.url,
                "webhookSecret": secret,
                "events": list(endpoint.events),
            }
        )
