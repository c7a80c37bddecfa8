"""Partner API views (spec: loverescue-integration-api.md, section 2).

Each view is thin: parse the request (integration.api.partner_inputs), call one selector or service
scoped to the therapist the token acts for (`request.user.therapist`), render with the output serializer
its schema names (integration.api.partner_outputs). Consent is read from the database on every request (the
cached caseload bodies through a token every consent write replaces: `caseload_response`);
the selectors raise core.domain errors that the LoveRescue envelope renders:

- unknown client / couple / alert -> 404 NOT_FOUND;
- unlinked, unconsented or revoked link (including another therapist's client and the clients of another
  partner's therapists) -> 403 NO_CONSENT "Client has not granted consent to this therapist";
- permission level below what the endpoint needs -> 403 INSUFFICIENT_PERMISSION.

Every view tells the access log which clients the response touched (`note_subjects`); a refused request
for an existing client is logged with that client's id too (the attempt is part of the audit trail).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework.response import Response

from core.actors import Actor
from core.apis import LOVERESCUE
from core.body_cache import cached_json_response
from core.context import note_subjects
from core.domain import Invalid
from core.schema import error_responses
from core.validation import validated
from integration.api import partner_inputs as inputs
from integration.api import partner_outputs as outputs
from integration.api.base import PartnerApiView, check_no_fields_body
from integration.events import OWNER_TYPE
from integration.models import PermissionLevel, TherapistClientLink
from integration.selectors import common
from integration.selectors.alerts import alert_list, visible_alert
from integration.selectors.caseload import caseload_body_key
from integration.selectors.clients import client_list
from integration.selectors.consent import LevelTooLow, NoConsent, client_link_for
from integration.selectors.couples import couple_dynamics
from integration.selectors.outcomes import outcomes
from integration.selectors.progress import client_progress
from integration.services.assignments import alert_mark_read, task_assign
from integration.services.reports import session_prep_report_generate
from webhooks.models import Scheme
from webhooks.services import WebhookEndpointInvalid, webhook_endpoint_register

TAGS = [LOVERESCUE.tag]


def partner_actor(request) -> Actor:
    return Actor.integration_partner(request.user.partner.pk)


def consented_link(request, client_id, required_level: str = PermissionLevel.BASIC) -> TherapistClientLink:
    """The therapist's consented link to the client at `required_level` (consent's domain errors else)."""
    try:
        link = client_link_for(therapist=request.user.therapist, client_id=client_id, required_level=required_level)
    except (NoConsent, LevelTooLow):
        note_subjects(request, "client", [client_id])  # the client exists: the refused attempt is logged
        raise
    note_subjects(request, "client", [client_id])
    return link


def caseload_response(request, view, body: str, data):
    """A caseload body (/clients, /outcomes) from the cache while the therapist's caseload generation is
    unchanged, else computed by `data()` and kept, sealed (names and emails never sit in the cache in clear).
    Exact: every write to what the body shows replaces the generation in its own transaction
    (docs/loverescue.md, "Speed"). The access log names the same clients either way."""
    key = caseload_body_key(request.user.therapist, body)
    return cached_json_response(request, view, key=key, now=common.utc_now(), data=data, sealed=True)


class ClientListView(PartnerApiView):
    """The therapist's clients with consent in force (revoked or never-consented links are left out)."""

    @extend_schema(
        tags=TAGS,
        operation_id="integration_clients_list",
        responses={200: outputs.ClientListResponseSerializer, **error_responses(LOVERESCUE, 401, 403, 429)},
        description=(
            "`latestMood` is null below STANDARD. In `couple`, a member who has not consented to this "
            "therapist is shown as `{id: null, withheld: true}`, without id or names. `unreadAlerts` counts the alerts "
            "visible at the client's level that this therapist has not read."
        ),
    )
    def get(self, request):
        therapist = request.user.therapist

        def data():
            rows = client_list(therapist=therapist)
            note_subjects(request, "client", [row.client_id for row in rows])
            return outputs.ClientListResponseSerializer({"clients": rows, "total": len(rows)}).data

        return caseload_response(request, self, "clients", data)


class ClientProgressView(PartnerApiView):
    """Assessment scores, activity completion (90 days ending today UTC) and course progress at every
    level; STANDARD adds moodTrends and ratioTrends (90 days; `ratio` is null when negative is 0); FULL
    adds individualResponses and journalEntries (90 days, therapist-hidden entries never). Keys above
    the client's level are absent, not null."""

    @extend_schema(
        tags=TAGS,
        operation_id="integration_client_progress",
        responses={200: outputs.ProgressResponseSerializer, **error_responses(LOVERESCUE, 401, 403, 404, 429)},
    )
    def get(self, request, client_id):
        link = consented_link(request, client_id)
        progress = client_progress(therapist=request.user.therapist, link=link)
        return Response(outputs.ProgressResponseSerializer(progress).data)


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
        responses={
            200: outputs.SessionPrepResponseSerializer,
            **error_responses(LOVERESCUE, 400, 401, 403, 404, 429),
        },
    )
    def get(self, request, client_id):
        link = consented_link(request, client_id, PermissionLevel.STANDARD)
        last_session_date = inputs.last_session_date_from_query(request.query_params)
        report = session_prep_report_generate(
            therapist=request.user.therapist,
            client=link.client,
            last_session_date=last_session_date,
            now=common.utc_now(),
            actor=partner_actor(request),
        )
        return Response(outputs.SessionPrepResponseSerializer(report).data)


class AssignView(PartnerApiView):
    """Assign a task (module / activities) to the client; any consented level (BASIC or above).

    `dueDate` is `YYYY-MM-DD`, today or later (UTC); it is returned as midnight UTC
    (`2026-02-19T00:00:00.000Z`) as the spec shows. `priority` is low, medium (default) or high."""

    @extend_schema(
        tags=TAGS,
        operation_id="integration_client_assign",
        request=inputs.AssignRequestSerializer,
        responses={201: outputs.AssignResponseSerializer, **error_responses(LOVERESCUE, 400, 401, 403, 404, 429)},
    )
    def post(self, request, client_id):
        link = consented_link(request, client_id)
        data = validated(inputs.AssignRequestSerializer, request.data, first_only=True, code=inputs.BAD_REQUEST)
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
            actor=partner_actor(request),
        )
        body = outputs.AssignResponseSerializer({"message": "Activity assigned", "task": task}).data
        return Response(body, status=201)


class CoupleDynamicsView(PartnerApiView):
    """Both partners side by side. A side is shown only if that partner has a consented link to this
    therapist, else `{"withheld": true, "reason": ...}`; `consent` says which sides are shown. `moodAvg`
    (30 days) only for a side at STANDARD or FULL. Matchups (latest first, at most 10) and the couple
    profile combine both partners' data, so they are returned only when both consented (else `[]` and
    null). 403 NO_CONSENT when neither partner consented to this therapist."""

    @extend_schema(
        tags=TAGS,
        operation_id="integration_couple_dynamics",
        responses={200: outputs.DynamicsResponseSerializer, **error_responses(LOVERESCUE, 401, 403, 404, 429)},
    )
    def get(self, request, couple_id):
        dynamics = couple_dynamics(therapist=request.user.therapist, couple_id=couple_id)
        note_subjects(request, "client", dynamics.shown_client_ids)
        return Response(outputs.DynamicsResponseSerializer(dynamics).data)


class AlertListView(PartnerApiView):
    """Alerts this therapist may see now: those of clients consented to them at the alert's level
    (CRISIS and RISK need STANDARD; MILESTONE and STAGNATION BASIC). `total` and `unreadCount` count
    every alert matching the filters, ignoring `limit`. A bad parameter is a 400 naming it."""

    @extend_schema(
        tags=TAGS,
        operation_id="integration_alerts_list",
        parameters=[
            OpenApiParameter("type", OpenApiTypes.STR, enum=list(inputs.ALERT_TYPES), required=False),
            OpenApiParameter("unreadOnly", OpenApiTypes.BOOL, required=False, description="true/false/1/0"),
            OpenApiParameter(
                "since", OpenApiTypes.DATETIME, required=False, description="Alerts created after this instant"
            ),
            OpenApiParameter(
                "limit",
                # The bounds parse_int_param enforces, stated so clients generated from the schema keep to them.
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": inputs.MAX_ALERT_LIMIT,
                    "default": inputs.DEFAULT_ALERT_LIMIT,
                },
                required=False,
                description=f"1..{inputs.MAX_ALERT_LIMIT}, default {inputs.DEFAULT_ALERT_LIMIT}",
            ),
        ],
        responses={200: outputs.AlertListResponseSerializer, **error_responses(LOVERESCUE, 400, 401, 403, 429)},
    )
    def get(self, request):
        filters = inputs.alert_filters_from_query(request.query_params)
        page = alert_list(therapist=request.user.therapist, filters=filters)
        note_subjects(request, "client", list(dict.fromkeys(alert.client_id for alert in page.alerts)))
        return Response(outputs.AlertListResponseSerializer(page).data)


class AlertReadView(PartnerApiView):
    """Extension to the spec: mark an alert read for this therapist (idempotent; the first read time is
    kept). Each therapist has their own read state. 404 for an unknown alert or one this therapist may
    not see (client not consented, or below the alert's level)."""

    @extend_schema(
        tags=TAGS,
        operation_id="integration_alert_read",
        request={"application/json": OpenApiTypes.OBJECT},  # no fields: empty or {}
        responses={200: outputs.AlertReadResponseSerializer, **error_responses(LOVERESCUE, 400, 401, 403, 404, 429)},
    )
    def post(self, request, alert_id):
        therapist = request.user.therapist
        alert = visible_alert(therapist=therapist, alert_id=alert_id)
        check_no_fields_body(request)
        recipient = alert_mark_read(alert=alert, therapist=therapist, actor=partner_actor(request))
        alert.read_at = recipient.read_at  # the body shows this therapist's (first) read time
        note_subjects(request, "client", [alert.client_id])
        return Response(outputs.AlertReadResponseSerializer({"alert": alert}).data)


class OutcomesView(PartnerApiView):
    """Caseload outcomes over clients with consent in force. `activeInCourse`: course active and not
    completed; `avgCourseWeek`: mean current week of clients with a course (1 decimal, half up; null when
    none). CRISIS alerts are STANDARD data, so `crisisAlerts` is 0 for BASIC clients."""

    @extend_schema(
        tags=TAGS,
        operation_id="integration_outcomes",
        responses={200: outputs.OutcomesResponseSerializer, **error_responses(LOVERESCUE, 401, 403, 429)},
    )
    def get(self, request):
        therapist = request.user.therapist

        def data():
            result = outcomes(therapist=therapist)
            note_subjects(request, "client", [row.client_id for row in result.clients])
            return outputs.OutcomesResponseSerializer(result).data

        return caseload_response(request, self, "outcomes", data)


class WebhookRegisterView(PartnerApiView):
    """Register the partner's webhook (one per partner: registering again replaces the previous one and
    cancels its pending deliveries). The URL must be https and resolve only to public addresses. The
    secret is returned once."""

    @extend_schema(
        tags=TAGS,
        operation_id="integration_webhook_register",
        request=inputs.WebhookRegisterRequestSerializer,
        responses={200: outputs.WebhookRegisterResponseSerializer, **error_responses(LOVERESCUE, 400, 401, 403, 429)},
    )
    def post(self, request):
        data = validated(
            inputs.WebhookRegisterRequestSerializer, request.data, first_only=True, code=inputs.BAD_REQUEST
        )
        partner = request.user.partner
        try:
            endpoint, secret = webhook_endpoint_register(
                owner_type=OWNER_TYPE,
                owner_id=str(partner.pk),
                url=data["webhookUrl"],
                events=data["events"],
                scheme=Scheme.LOVERESCUE,
                replace_existing=True,
                actor=partner_actor(request),
            )
        except WebhookEndpointInvalid as exc:
            # Same message, in this API's BAD_REQUEST code (the webhook engine's error carries its own).
            raise Invalid(exc.message or "Invalid webhook registration", code=inputs.BAD_REQUEST) from None
        body = {
            "message": "Webhook registered successfully",
            "webhookUrl": endpoint.url,
            "webhookSecret": secret,
            "events": list(endpoint.events),
        }
        return Response(outputs.WebhookRegisterResponseSerializer(body).data)
