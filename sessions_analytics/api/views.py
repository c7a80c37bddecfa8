"""Therapist dashboard API (spec: therapist-dashboard-api.md; decisions: docs/therapist-dashboard.md): training
sessions (`/api/session`, `/api/session/{id}`, added by issue 13), progress, snapshots, skills, analytics,
comparisons and evaluations. Every route is in the THERAPIST family (core.apis: the `{"error","code","details"}`
body, 100/min and 1000/h per user).

Bearer: a platform token (POST /api/v1/auth/token) or a Clerk session token (OIDC), as for Routiq. The
organization follows core.scoping (X-Organization-ID, optional for a caller with one membership). Therapist,
supervisor, owner and admin use the dashboard; staff and viewer get 403. Who may read which session and act for
which therapist is decided by sessions_analytics.selectors (a session the caller may not read is 404
SESSION_NOT_FOUND, like an unknown one); the action rules by sessions_analytics.services.

Thin views: body or query parameters -> selector/service -> output serializer.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from accounts.authentication import OIDCAuthentication, PlatformJWTAuthentication
from core.actors import Actor
from core.api import ApiView
from core.apis import THERAPIST
from core.body_cache import cached_json_response
from core.context import note_subjects
from core.errors import ApiError
from core.pagination import MAX_OFFSET, page_body, page_request, page_serializer
from core.schema import error_responses
from core.scoping import ORGANIZATION_HEADER, OrganizationRolePermission
from core.time import utc_now
from core.validation import validated
from sessions_analytics import aggregates, selectors, services
from sessions_analytics.aggregates import COMPARISON_LIST_MAX
from sessions_analytics.api import serializers as s
from sessions_analytics.selectors import DASHBOARD_ROLES, TIME_RANGES

TAGS = [THERAPIST.tag]
VALIDATION_ERROR = "VALIDATION_ERROR"
MISSING_PARAMETER = "MISSING_PARAMETER"
ERRORS = (400, 401, 403, 404, 429)
SUBJECT = "training_session"
SESSIONS_PER_PAGE, SESSIONS_PER_PAGE_MAX = 20, 100
AUTH_NOTE = (
    "Bearer: a platform token (POST /api/v1/auth/token) or a Clerk session token of a member; therapist, "
    "supervisor, owner and admin may call it, other roles get 403. A therapist reaches only their own sessions, "
    "a supervisor, owner or admin every session of the organization; any other session id is 404 "
    "SESSION_NOT_FOUND. Unknown body fields are ignored."
)
THERAPIST_ID_NOTE = (
    "therapistId: absent or your own usr_ id acts for you; someone else's needs a supervisor, owner or admin "
    "(else 403 FORBIDDEN) and a member of this organization (else 404 THERAPIST_NOT_FOUND)."
)
ORGANIZATION_HEADER_PARAMETER = OpenApiParameter(
    ORGANIZATION_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="The organization (org_...: ours or its Clerk id); required when the caller belongs to several.",
)
TIME_RANGE_PARAMETER = OpenApiParameter(
    "timeRange",
    OpenApiTypes.STR,
    enum=list(TIME_RANGES),
    description="7d, 30d, 90d or 1y (365 days) back from now, boundary included; absent: all time; else 400",
)


def _session_id_parameter(required: bool, description: str = "The session (ses_...)") -> OpenApiParameter:
    # An empty value is no value (_param): a required one says minLength 1 (an optional empty one is absent).
    schema = {"type": "string", "minLength": 1} if required else OpenApiTypes.STR
    return OpenApiParameter("sessionId", schema, required=required, description=description)


def _therapist_id_parameter(description: str) -> OpenApiParameter:
    return OpenApiParameter("therapistId", OpenApiTypes.STR, description=description)


def _schema(
    operation_id: str,
    summary: str,
    description: str,
    *,
    response,
    success: int = 200,
    request=None,
    parameters=(),
    errors=ERRORS,
):
    return extend_schema(
        tags=TAGS,
        operation_id=operation_id,
        summary=summary,
        description=f"{AUTH_NOTE} {description}",
        request=request,
        parameters=[ORGANIZATION_HEADER_PARAMETER, *parameters],
        responses={success: response, **error_responses(THERAPIST, *errors)},
    )


def _body(serializer_class, request) -> dict:
    """The validated body: a JSON object only (an array or a scalar is 400), each bad field named in `details`
    by its JSON path."""
    if not isinstance(request.data, dict):
        raise ApiError(400, "The request body must be a JSON object", code=VALIDATION_ERROR)
    return validated(serializer_class, request.data, code=VALIDATION_ERROR, field_details=True)


def _param(request, name: str, *, required: bool = False) -> str | None:
    """A query parameter; an empty value is absent. A required one missing is 400 MISSING_PARAMETER."""
    value = request.query_params.get(name) or None
    if value is None and required:
        raise ApiError(400, f"{name} is required", code=MISSING_PARAMETER, details={name: "is required"})
    return value


def _flag(request, name: str) -> bool:
    value = request.query_params.get(name)
    if value is None or value == "false":
        return False
    if value == "true":
        return True
    raise ApiError(400, f"{name} must be true or false", code=VALIDATION_ERROR, details={name: "must be true or false"})


class TherapistView(ApiView):
    """Base of the therapist dashboard views."""

    api_family = THERAPIST
    authentication_classes = [OIDCAuthentication, PlatformJWTAuthentication]
    permission_classes = [OrganizationRolePermission]
    read_roles = DASHBOARD_ROLES
    write_roles = DASHBOARD_ROLES

    def access(self, request) -> selectors.Access:
        return selectors.access_for(request.organization_scope, request.user)

    def actor(self, request) -> Actor:
        return Actor.user(request.user)

    def session(self, request, access, session_id: str | None):
        session = selectors.session_get(access, session_id)
        note_subjects(request, SUBJECT, [session.public_id])
        return session

    def therapist(self, access, therapist_id: str | None):
        """The therapist named, or None when none is (the endpoint's default applies)."""
        return selectors.therapist_resolve(access, therapist_id) if therapist_id else None


def _session_response(request, access, session_id: str, *, status_code: int = 200) -> Response:
    detail = selectors.session_detail(access, session_id)
    note_subjects(request, SUBJECT, [detail.session.public_id])
    return Response(s.SessionOutput(s.session_body(detail)).data, status=status_code)


# --- Sessions -------------------------------------------------------------------------------------------


class SessionListView(TherapistView):
    @_schema(
        "therapist_sessions_list",
        "List training sessions",
        "Newest startTime first, paginated. A therapist lists their own sessions; a reviewer without therapistId "
        "every session of the organization. " + THERAPIST_ID_NOTE,
        response=page_serializer(s.SessionBriefOutput),
        parameters=[
            # The bounds page_request enforces, stated so clients generated from the schema keep to them. The
            # page's maximum depends on the limit (a schema cannot say so): in the description only.
            OpenApiParameter(
                "page",
                {"type": "integer", "minimum": 1, "default": 1},
                description=f"Page number, from 1 (default 1); (page - 1) x limit at most {MAX_OFFSET:,}",
            ),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": SESSIONS_PER_PAGE_MAX, "default": SESSIONS_PER_PAGE},
                description=f"Sessions per page, 1 to {SESSIONS_PER_PAGE_MAX} (default {SESSIONS_PER_PAGE})",
            ),
            OpenApiParameter("status", OpenApiTypes.STR, enum=s.STATUSES, description="Only sessions in this status"),
            _therapist_id_parameter("Only this therapist's sessions (usr_...)"),
            OpenApiParameter(
                "timeRange",
                OpenApiTypes.STR,
                enum=list(TIME_RANGES),
                description="Only sessions started within 7d, 30d, 90d or 1y of now (boundary included)",
            ),
        ],
    )
    def get(self, request):
        access = self.access(request)
        paging = page_request(
            request.query_params,
            default_limit=SESSIONS_PER_PAGE,
            max_limit=SESSIONS_PER_PAGE_MAX,
            code=VALIDATION_ERROR,
        )
        page = selectors.sessions_page(
            access,
            therapist=self.therapist(access, _param(request, "therapistId")),
            status=request.query_params.get("status"),
            since=selectors.time_range_since(request.query_params.get("timeRange"), utc_now()),
            page=paging,
        )
        note_subjects(request, SUBJECT, [session.public_id for session in page.items])
        return Response(page_body(page, s.SessionBriefOutput.render_many(page.items)))

    @_schema(
        "therapist_sessions_create",
        "Create a training session",
        "The caller is its therapist; it starts active at startTime (default now).",
        request=s.SessionCreateInput,
        response=s.SessionOutput,
        success=201,
    )
    def post(self, request):
        data = _body(s.SessionCreateInput, request)
        access = self.access(request)
        session = services.session_create(access=access, actor=self.actor(request), **data)
        return _session_response(request, access, session.public_id, status_code=status.HTTP_201_CREATED)


class SessionDetailView(TherapistView):
    @_schema(
        "therapist_session_get",
        "Get a training session",
        "With its snapshots, current progress metrics (null before any) and, only when analytics were posted, "
        "analyticsData.",
        response=s.SessionOutput,
    )
    def get(self, request, session_id: str):
        return _session_response(request, self.access(request), session_id)

    @_schema(
        "therapist_session_update",
        "Update a training session (status, endTime, progress)",
        "At least one field. active <-> paused, active|paused -> completed|cancelled; the same status is a no-op; "
        "leaving completed or cancelled is 409 INVALID_TRANSITION. Completing or cancelling without endTime ends "
        "it now; an endTime before startTime is 400.",
        request=s.SessionUpdateInput,
        response=s.SessionOutput,
        errors=(*ERRORS, 409),
    )
    def patch(self, request, session_id: str):
        data = _body(s.SessionUpdateInput, request)
        access = self.access(request)
        session = self.session(request, access, session_id)
        services.session_update(session=session, actor=self.actor(request), **data)
        return _session_response(request, access, session.public_id)


# --- Progress -------------------------------------------------------------------------------------------


class ProgressView(TherapistView):
    @_schema(
        "therapist_progress_get",
        "Get a session's progress metrics",
        "progressMetrics is null before the first post; feedback (oldest first) only with includeFeedback=true.",
        response=s.ProgressOutput,
        parameters=[
            _session_id_parameter(True),
            OpenApiParameter(
                "includeFeedback", OpenApiTypes.STR, enum=["true", "false"], description="Default false; else 400"
            ),
        ],
    )
    def get(self, request):
        include_feedback = _flag(request, "includeFeedback")
        session = self.session(request, self.access(request), _param(request, "sessionId", required=True))
        read = selectors.progress_read(session, include_feedback=include_feedback)
        body = {
            "session_id": session.public_id,
            "progress_metrics": s.progress_metrics_view(read),
            "feedback": read.feedback if include_feedback else s.ABSENT,
        }
        return Response(s.ProgressOutput(body).data)

    @_schema(
        "therapist_progress_record",
        "Record a session's progress metrics",
        "Replaces the session's metrics, upserts its skill scores, records milestones reached for the first time "
        "and appends evaluationFeedback when not empty. therapistMessages plus clientMessages must not "
        "exceed totalMessages, nor activeTime sessionDuration. " + THERAPIST_ID_NOTE,
        request=s.ProgressInput,
        response=s.SuccessOutput,
    )
    def post(self, request):
        data = _body(s.ProgressInput, request)
        access = self.access(request)
        session = self.session(request, access, data["session_id"])
        selectors.session_of_therapist(session, self.therapist(access, data.get("therapist_id")))
        services.progress_record(
            session=session,
            author=request.user,
            metrics=data["progress_metrics"],
            feedback=data.get("evaluation_feedback") or None,
            actor=self.actor(request),
        )
        return Response(s.SuccessOutput({"success": True, "session_id": session.public_id}).data)


# --- Snapshots ------------------------------------------------------------------------------------------


class SnapshotsView(TherapistView):
    @_schema(
        "therapist_snapshots_get",
        "Get a session's progress snapshots and milestones",
        "Snapshots by timestamp, milestones by achievement.",
        response=s.SnapshotsOutput,
        parameters=[_session_id_parameter(True)],
    )
    def get(self, request):
        session = self.session(request, self.access(request), _param(request, "sessionId", required=True))
        return Response(s.SnapshotsOutput(selectors.snapshots_read(session)).data)

    @_schema(
        "therapist_snapshots_record",
        "Record progress snapshots",
        f"1 to {s.MAX_SNAPSHOTS_PER_REQUEST} per request, timestamps distinct. Idempotent: a timestamp the session "
        f"already has is skipped (the first value stays). A session holds at most "
        f"{services.MAX_SNAPSHOTS_PER_SESSION} (else 400 SNAPSHOT_LIMIT).",
        request=s.SnapshotsInput,
        response=s.SuccessOutput,
    )
    def post(self, request):
        data = _body(s.SnapshotsInput, request)
        session = self.session(request, self.access(request), data["session_id"])
        services.snapshots_record(
            session=session,
            snapshots=[(snapshot["timestamp"], snapshot["value"]) for snapshot in data["snapshots"]],
            actor=self.actor(request),
        )
        return Response(s.SuccessOutput({"success": True, "session_id": session.public_id}).data)


# --- Skills ---------------------------------------------------------------------------------------------


class SkillsView(TherapistView):
    @_schema(
        "therapist_skills_get",
        "Get a therapist's skill development",
        "sessionId or therapistId (else 400 MISSING_PARAMETER): therapistId covers that therapist's sessions, "
        "sessionId the one session, both the session (which must be the therapist's). Per skill: currentScore "
        "from the latest practising session (by start), practiceSessions, lastPracticed (its start), createdAt "
        "(first scored). Sorted by skill name. " + THERAPIST_ID_NOTE,
        response=s.SkillsOutput,
        parameters=[
            _session_id_parameter(False, "One session (ses_...)"),
            _therapist_id_parameter("A therapist (usr_...): all their sessions"),
        ],
    )
    def get(self, request):
        session_id, therapist_id = _param(request, "sessionId"), _param(request, "therapistId")
        if session_id is None and therapist_id is None:
            raise ApiError(
                400,
                "sessionId or therapistId is required",
                code=MISSING_PARAMETER,
                details={"sessionId": "sessionId or therapistId is required"},
            )
        access = self.access(request)
        session = self.session(request, access, session_id) if session_id else None
        therapist = self.therapist(access, therapist_id)
        if session is not None:
            selectors.session_of_therapist(session, therapist)
        body = {
            "session_id": session_id,
            "therapist_id": (therapist or session.therapist).public_id,
            "skills": aggregates.skills_summary(access, therapist=therapist, session=session),
        }
        return Response(s.SkillsOutput(body).data)

    @_schema(
        "therapist_skills_record",
        "Record a session's skill scores",
        f'1 to {s.MAX_SKILL_SCORES} skills, scores 0-100; names are normalised ("Active Listening" and '
        '"active listening" are one skill); a later post for a skill replaces its score. ' + THERAPIST_ID_NOTE,
        request=s.SkillsInput,
        response=s.SkillsRecordedOutput,
    )
    def post(self, request):
        data = _body(s.SkillsInput, request)
        access = self.access(request)
        session = self.session(request, access, data["session_id"])
        selectors.session_of_therapist(session, self.therapist(access, data.get("therapist_id")))
        services.skill_scores_record(session=session, scores=data["skill_scores"], actor=self.actor(request))
        body = {"success": True, "session_id": session.public_id, "therapist_id": session.therapist.public_id}
        return Response(s.SkillsRecordedOutput(body).data)


# --- Analytics ------------------------------------------------------------------------------------------


class AnalyticsView(TherapistView):
    @_schema(
        "therapist_analytics_get",
        "Get a session's analytics",
        "As last posted (source posted; sessionMetrics from the range's first date, snapshots from its start), "
        "else derived from the therapist's sessions that started in the range (source derived).",
        response=s.AnalyticsOutput,
        parameters=[_session_id_parameter(True), TIME_RANGE_PARAMETER],
    )
    def get(self, request):
        now = utc_now()
        since = selectors.time_range_since(request.query_params.get("timeRange"), now)
        session = self.session(request, self.access(request), _param(request, "sessionId", required=True))

        def data():
            analytics = aggregates.analytics_read(session, since=since, now=now)
            return s.AnalyticsOutput({"session_id": session.public_id, "analytics_data": analytics}).data

        # Derived analytics are cached under the therapist's generation (docs/therapist-dashboard.md, "Speed");
        # posted ones are a few stored rows, read each time.
        key = None if session.analytics_posted_at is not None else aggregates.derived_analytics_key(session, since, now)
        return cached_json_response(
            request,
            self,
            key=key,
            now=now,
            data=data,
            valid_until=lambda: aggregates.derived_analytics_valid_until(session, since, now),
        )

    @_schema(
        "therapist_analytics_record",
        "Record a session's analytics",
        f"Replaces the session's posted analytics. At most {s.MAX_SESSION_METRICS} sessionMetrics, "
        f"{s.MAX_SKILL_PROGRESS} skillProgress, {s.MAX_SUMMARY_STATS} summaryStats and "
        f"{s.MAX_SNAPSHOTS_PER_REQUEST} progressSnapshots (stored like POST snapshots). Entry sessionId and "
        "therapistId, when given, must be this session's and its therapist's; skillId the normalised skill name.",
        request=s.AnalyticsInput,
        response=s.SuccessOutput,
    )
    def post(self, request):
        data = _body(s.AnalyticsInput, request)
        session = self.session(request, self.access(request), data["session_id"])
        analytics = data["analytics_data"]
        errors = s.foreign_entry_ids(analytics, session_id=session.public_id, therapist_id=session.therapist.public_id)
        if errors:
            raise ApiError(
                400, "Analytics entries name another session or therapist", code=VALIDATION_ERROR, details=errors
            )
        services.analytics_record(session=session, data=analytics, actor=self.actor(request))
        return Response(s.SuccessOutput({"success": True, "session_id": session.public_id}).data)


# --- Comparisons ----------------------------------------------------------------------------------------


class ComparisonView(TherapistView):
    @_schema(
        "therapist_comparisons_list",
        "List session comparisons",
        "therapistId or sessionId (else 400 MISSING_PARAMETER): a therapist's comparisons, or those where the "
        f"session is the current or the previous one. Newest analyzedAt first, at most {COMPARISON_LIST_MAX}. "
        "trend: progressImprovement + skillScoreImprovement >= 2 improving, <= -2 declining, else stable. "
        + THERAPIST_ID_NOTE,
        response=s.ComparisonsOutput,
        parameters=[
            _therapist_id_parameter("A therapist (usr_...): their comparisons"),
            _session_id_parameter(False, "A session (ses_...): comparisons where it is current or previous"),
            OpenApiParameter(
                "timeRange",
                OpenApiTypes.STR,
                enum=list(TIME_RANGES),
                description="Only comparisons analyzed within 7d, 30d, 90d or 1y of now (boundary included)",
            ),
        ],
    )
    def get(self, request):
        session_id, therapist_id = _param(request, "sessionId"), _param(request, "therapistId")
        if session_id is None and therapist_id is None:
            raise ApiError(
                400,
                "therapistId or sessionId is required",
                code=MISSING_PARAMETER,
                details={"therapistId": "therapistId or sessionId is required"},
            )
        since = selectors.time_range_since(request.query_params.get("timeRange"), utc_now())
        access = self.access(request)
        session = self.session(request, access, session_id) if session_id else None
        therapist = self.therapist(access, therapist_id)
        rows = aggregates.comparisons_read(access, therapist=therapist, session=session, since=since)
        note_subjects(
            request, SUBJECT, sorted({id_ for row in rows for id_ in (row.current_session_id, row.previous_session_id)})
        )
        body = {
            "therapist_id": (therapist or session.therapist).public_id,
            "session_id": session_id,
            "comparisons": rows,
        }
        return Response(s.ComparisonsOutput(body).data)

    @_schema(
        "therapist_comparisons_create",
        "Record a comparison of two sessions",
        "Both sessions readable (else 404), the same therapist's (therapistId's when given, else 400), distinct, "
        "the previous started before the current (400). improvementScore 0-100; progressImprovement and "
        "skillScoreImprovement -100 to 100 points; responseTimeImprovement -86400 to 86400 seconds. "
        + THERAPIST_ID_NOTE,
        request=s.ComparisonInput,
        response=s.ComparisonCreatedOutput,
        success=201,
    )
    def post(self, request):
        data = _body(s.ComparisonInput, request)
        access = self.access(request)
        current = self.session(request, access, data["current_session_id"])
        previous = self.session(request, access, data["previous_session_id"])
        comparison = services.comparison_create(
            access=access,
            therapist=self.therapist(access, data.get("therapist_id")),
            current=current,
            previous=previous,
            improvement_score=data["improvement_score"],
            metrics=data["metrics"],
            actor=self.actor(request),
        )
        body = {
            "success": True,
            "comparison_id": comparison.public_id,
            "therapist_id": current.therapist.public_id,
            "current_session_id": current.public_id,
        }
        return Response(s.ComparisonCreatedOutput(body).data, status=status.HTTP_201_CREATED)


# --- Evaluations ----------------------------------------------------------------------------------------


class EvaluationView(TherapistView):
    @_schema(
        "therapist_evaluations_list",
        "List a session's evaluations",
        "Oldest first; the session's therapist and reviewers read them.",
        response=s.EvaluationsOutput,
        parameters=[_session_id_parameter(True)],
    )
    def get(self, request):
        session = self.session(request, self.access(request), _param(request, "sessionId", required=True))
        body = {"session_id": session.public_id, "evaluations": selectors.evaluations_read(session)}
        return Response(s.EvaluationsOutput(body).data)

    @_schema(
        "therapist_evaluations_create",
        "Evaluate a session",
        "Supervisors, owners and admins only (a therapist gets 403), never their own session (403). evaluatorId, "
        "when given, must be the caller's usr_ id (else 403). rating 1-5; feedback and comments at most "
        f"{s.TEXT_MAX} characters, stored encrypted.",
        request=s.EvaluationInput,
        response=s.EvaluationCreatedOutput,
        success=201,
    )
    def post(self, request):
        data = _body(s.EvaluationInput, request)
        access = self.access(request)
        session = self.session(request, access, data["session_id"])
        evaluation = services.evaluation_create(
            session=session,
            evaluator=selectors.evaluator_resolve(access, data.get("evaluator_id")),
            rating=data["rating"],
            feedback=data["feedback"],
            comments=data.get("comments"),
            actor=self.actor(request),
            access=access,
        )
        body = {"success": True, "evaluation_id": evaluation.public_id}
        return Response(s.EvaluationCreatedOutput(body).data, status=status.HTTP_201_CREATED)
