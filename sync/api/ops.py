"""Routiq operations API (spec "Sync Management", "Cliniko Integration", "Administration"; issue 12
"Triggers" and "Administration"). Errors in Routiq's `{"error", "detail", "timestamp", "path"}` body.

- Sync (`/api/v1/sync/...`, the sync rate tier, 100 / 15 min): `POST trigger` and `POST scheduler/trigger`
  run what the hourly schedule runs (comprehensive, incremental when possible) for the organization of
  `X-Organization-ID` (or the caller's only one); `GET scheduler/status`; `GET progress/{sync_id}` (a run
  of an organization the caller cannot read is a 404 exactly like an unknown id); `GET history/{org}?limit=`.
- Cliniko (`/api/v1/cliniko/...`, the API tier): `POST sync/{org}?mode=`, `GET status/{org}`,
  `GET test-connection/{org}`, `POST import-patients/{org}` (patients-only), `GET debug/{org}` (counts and
  the last run's error codes, never a record).
- Administration (`/api/v1/admin/...`, the admin tier, 50 / 15 min): `GET monitoring/system-health`,
  `POST database/cleanup?days_old=N`. A staff user (platform token) sees and cleans the whole platform, or
  the organization named by `X-Organization-ID`; anyone else needs the owner or admin role in the
  organization they act in (header, or their only organization) and sees only it.

Every trigger answers the spec's body plus the run's `sync_id`; a trigger while a run of the organization is
pending or running answers that run with `sync_started: false`. Only owners and admins trigger a run,
test the connection, read the debug view or clean up; every member reads status, progress and history.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiRequest, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from core.apis import ROUTIQ, ROUTIQ_ADMIN_RATES, ROUTIQ_SYNC_RATES
from core.context import set_organization
from core.domain import Invalid, NotFound, PermissionDenied
from core.errors import ApiError
from core.pagination import parse_int_param
from core.schema import error_responses
from core.scoping import (
    MANAGE_ROLES,
    ORGANIZATION_HEADER,
    OIDCClaims,
    directory,
    resolve_scope,
)
from core.time import utc_now
from sync import selectors
from sync import services_admin as ops
from sync.api import ops_serializers as s
from sync.api.views import RoutiqView

TAGS = [ROUTIQ.tag]
ORGANIZATION_PARAMETER = OpenApiParameter(
    ORGANIZATION_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="The organization (org_...: ours or its Clerk id), required when the caller belongs to several.",
)
MODE_PARAMETER = OpenApiParameter(
    "mode", OpenApiTypes.STR, enum=s.MODES, description="comprehensive (default), basic or patients-only"
)
LIMIT_PARAMETER = OpenApiParameter(
    "limit", OpenApiTypes.INT, description=f"Recent runs listed, 1 to {selectors.HISTORY_LIMIT_MAX} (default 10)"
)
DAYS_OLD_PARAMETER = OpenApiParameter(
    "days_old",
    OpenApiTypes.INT,
    description=f"Delete rows older than this many days, {ops.DAYS_OLD_MIN} to {ops.DAYS_OLD_MAX} (default 90)",
)
MEMBER_NOTE = "Bearer token (Clerk session or platform token) of a member of the organization."
MANAGER_NOTE = "Bearer token of an owner or admin of the organization; other roles get 403."
ADMIN_NOTE = (
    "A staff user's platform token (the whole platform, or the organization of X-Organization-ID), or the "
    "token of an owner or admin (their organization only); others get 403."
)


def _schema(operation_id, summary, *, note, responses, errors, parameters=(), header=False):
    # The POSTs take no body (their parameters are in the path and query): documented as an empty object.
    is_post = operation_id in POST_OPERATIONS
    return extend_schema(
        tags=TAGS,
        operation_id=operation_id,
        summary=summary,
        description=note,
        request=NO_BODY if is_post else None,
        parameters=[*([ORGANIZATION_PARAMETER] if header else []), *parameters],
        responses={**responses, **error_responses(ROUTIQ, *errors)},
    )


# Documented as an optional empty object: nothing is read from a body, and one sent is ignored.
NO_BODY = OpenApiRequest(OpenApiTypes.OBJECT, examples=[OpenApiExample("No body", value={})])
POST_OPERATIONS = frozenset(
    {
        "routiq_sync_trigger",
        "routiq_sync_scheduler_trigger",
        "routiq_cliniko_sync",
        "routiq_cliniko_import_patients",
        "routiq_admin_database_cleanup",
    }
)


def _mode_param(params) -> str:
    raw = params.get("mode")
    if raw is None:
        return "comprehensive"
    if raw not in s.MODES:
        raise ApiError(400, f"mode must be one of: {', '.join(s.MODES)}")
    return raw


class _RoutiqOpsView(RoutiqView):
    """Reads: every reader of the organization's data (owner, admin, staff, viewer); writes (triggers):
    owner and admin only."""

    write_roles = MANAGE_ROLES

    def organization_id(self, request) -> str:
        return self.organization_label(request)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if request.method == "POST":
            require_no_body(request)


def require_no_body(request) -> None:
    """These POSTs take their options from the path and query: an empty body or a JSON object (ignored) is
    fine; a JSON body that does not parse (the parser's 400) or is not an object is a 400, never a 200.
    Bodies of other media types (an empty form a client library adds) are not read."""
    if request.content_type.split(";")[0].strip().lower() != "application/json":
        return
    if request.body.strip() and not isinstance(request.data, dict):
        raise ApiError(400, "The request body must be empty or a JSON object (this operation reads none)")


class _SyncTier(_RoutiqOpsView):
    rate_policy = ROUTIQ_SYNC_RATES


# --- Triggers -----------------------------------------------------------------------------------------


def _start(view, request, *, mode: str):
    from sync import services

    run, started = services.sync_run_start(
        organization=view.organization(request),
        mode=mode,
        trigger="api",
        requested_by=request.user,
        actor=view.actor(request),
    )
    return run, started


def _trigger_body(view, request, run, started: bool, *, started_message: str) -> dict:
    return {
        "message": started_message if started else "A sync of this organization is already running",
        "sync_started": started,
        "sync_id": run.public_id,
        "organization_id": view.organization_id(request),
        "sync_mode": run.mode,
        "status": run.status,
        "timestamp": utc_now(),
    }


TRIGGER_ERRORS = (400, 401, 403, 404, 409, 429)


class SyncTriggerView(_SyncTier):
    @_schema(
        "routiq_sync_trigger",
        "Trigger a sync (what the hourly schedule runs: comprehensive, incremental when possible)",
        note=MANAGER_NOTE + " 409 when Cliniko is not connected.",
        responses={200: s.SyncTriggerOutput},
        errors=TRIGGER_ERRORS,
        header=True,
    )
    def post(self, request):
        run, started = _start(self, request, mode="comprehensive")
        return Response(
            s.SyncTriggerOutput(
                _trigger_body(self, request, run, started, started_message="Sync started successfully")
            ).data
        )


class SchedulerTriggerView(_SyncTier):
    @_schema(
        "routiq_sync_scheduler_trigger",
        "Run the scheduled sync now",
        note=MANAGER_NOTE + " 409 when Cliniko is not connected.",
        responses={200: s.SyncTriggerOutput},
        errors=TRIGGER_ERRORS,
        header=True,
    )
    def post(self, request):
        run, started = _start(self, request, mode="comprehensive")
        body = _trigger_body(self, request, run, started, started_message="Scheduled sync triggered successfully")
        return Response(s.SyncTriggerOutput(body).data)


class SchedulerStatusView(_SyncTier):
    @_schema(
        "routiq_sync_scheduler_status",
        "Scheduler status of the organization",
        note=MEMBER_NOTE,
        responses={200: s.SchedulerStatusOutput},
        errors=(400, 401, 403, 404, 429),
        header=True,
    )
    def get(self, request):
        body = selectors.scheduler_status(organization=self.organization(request))
        body["organization_id"] = self.organization_id(request)
        return Response(s.SchedulerStatusOutput(body).data)


class SyncProgressView(_SyncTier):
    """The run's organization is the scope: a caller who may not read it gets 404, as for an unknown id."""

    permission_classes = [IsAuthenticated]

    @_schema(
        "routiq_sync_progress",
        "Progress of a sync run",
        note=MEMBER_NOTE + " A run of another organization is a 404, like an unknown id.",
        responses={200: s.SyncProgressOutput},
        errors=(401, 403, 404, 429),
    )
    def get(self, request, sync_id: str):
        if not isinstance(request.auth, OIDCClaims) and directory().only_organization(request.user) == (None, 0):
            raise PermissionDenied("You belong to no organization")  # as every organization-scoped route
        run = selectors.sync_run_find(public_id=sync_id)
        if run is None:
            raise NotFound("Sync not found")
        try:
            scope = resolve_scope(request, run.organization.public_id)
        except (PermissionDenied, Invalid, NotFound):
            raise NotFound("Sync not found") from None
        if not scope.allows(self.read_roles):
            raise NotFound("Sync not found")
        request.organization_scope = scope
        set_organization(request, scope.public_id)
        label = (request.headers.get(ORGANIZATION_HEADER) or "").strip() or (
            run.organization.clerk_organization_id or scope.public_id
        )
        return Response(s.SyncProgressOutput(selectors.run_progress(run, organization_id=label)).data)


class SyncHistoryView(_SyncTier):
    @_schema(
        "routiq_sync_history",
        "Sync history of an organization",
        note=MEMBER_NOTE,
        responses={200: s.SyncHistoryOutput},
        errors=(400, 401, 403, 404, 429),
        parameters=[LIMIT_PARAMETER],
    )
    def get(self, request, organization_id: str):
        limit = parse_int_param(
            request.query_params, "limit", default=10, minimum=1, maximum=selectors.HISTORY_LIMIT_MAX
        )
        body = selectors.sync_history(organization=self.organization(request), limit=limit)
        body["organization_id"] = self.organization_id(request)
        return Response(s.SyncHistoryOutput(body).data)


# --- Cliniko --------------------------------------------------------------------------------------------

MODE_MESSAGES = {
    "comprehensive": "Comprehensive Cliniko sync started successfully",
    "basic": "Basic Cliniko sync started successfully",
    "patients-only": "Cliniko patient import started successfully",
}


class _ClinikoSyncBase(_RoutiqOpsView):
    def _answer(self, request, mode: str):
        run, started = _start(self, request, mode=mode)
        body = _trigger_body(self, request, run, started, started_message=MODE_MESSAGES[mode])
        body["success"] = True
        return Response(s.ClinikoSyncOutput(body).data)


class ClinikoSyncView(_ClinikoSyncBase):
    @_schema(
        "routiq_cliniko_sync",
        "Trigger a Cliniko sync in the mode given",
        note=MANAGER_NOTE + " 409 when Cliniko is not connected.",
        responses={200: s.ClinikoSyncOutput},
        errors=TRIGGER_ERRORS,
        parameters=[MODE_PARAMETER],
    )
    def post(self, request, organization_id: str):
        return self._answer(request, _mode_param(request.query_params))


class ClinikoImportPatientsView(_ClinikoSyncBase):
    @_schema(
        "routiq_cliniko_import_patients",
        "Import patients from Cliniko (a patients-only sync)",
        note=MANAGER_NOTE + " 409 when Cliniko is not connected.",
        responses={200: s.ClinikoSyncOutput},
        errors=TRIGGER_ERRORS,
    )
    def post(self, request, organization_id: str):
        return self._answer(request, "patients-only")


class ClinikoStatusView(_RoutiqOpsView):
    @_schema(
        "routiq_cliniko_status",
        "Cliniko connection status of an organization",
        note=MEMBER_NOTE,
        responses={200: s.ClinikoStatusOutput},
        errors=(400, 401, 403, 404, 429),
    )
    def get(self, request, organization_id: str):
        body = selectors.cliniko_status(organization=self.organization(request))
        body["organization_id"] = self.organization_id(request)
        return Response(s.ClinikoStatusOutput(body).data)


class ClinikoTestConnectionView(_RoutiqOpsView):
    read_roles = MANAGE_ROLES  # it calls Cliniko with the organization's key and records the outcome

    @_schema(
        "routiq_cliniko_test_connection",
        "Test the Cliniko connection (calls Cliniko with the stored key)",
        note=MANAGER_NOTE + " 409 when Cliniko is not connected.",
        responses={200: s.ConnectionTestOutput},
        errors=(400, 401, 403, 404, 409, 429),
    )
    def get(self, request, organization_id: str):
        body = ops.cliniko_connection_test(organization=self.organization(request), actor=self.actor(request))
        body["organization_id"] = self.organization_id(request)
        return Response(s.ConnectionTestOutput(body).data)


class ClinikoDebugView(_RoutiqOpsView):
    read_roles = MANAGE_ROLES

    @_schema(
        "routiq_cliniko_debug",
        "Cliniko sync diagnostics: counts and the last run's error codes (never records)",
        note=MANAGER_NOTE,
        responses={200: s.DebugOutput},
        errors=(400, 401, 403, 404, 429),
    )
    def get(self, request, organization_id: str):
        body = selectors.cliniko_debug(organization=self.organization(request))
        body["organization_id"] = self.organization_id(request)
        return Response(s.DebugOutput(body).data)


# --- Administration ---------------------------------------------------------------------------------------


class _AdminTier(_RoutiqOpsView):
    rate_policy = ROUTIQ_ADMIN_RATES
    permission_classes = [IsAuthenticated]

    def organizations(self, request):
        """The organizations the caller may see here: None = the whole platform (staff, no header)."""
        user = request.user
        header = (request.headers.get(ORGANIZATION_HEADER) or "").strip()
        if user.is_staff and not isinstance(request.auth, OIDCClaims):
            if not header:
                return None
            organization = directory().find(header) if "\x00" not in header else None
            if organization is None:
                raise NotFound("Organization not found", details={"header": header})
            set_organization(request, organization.public_id)
            return [organization]
        scope = resolve_scope(request)
        if not scope.allows(MANAGE_ROLES):
            raise PermissionDenied("Administration needs a staff user or the owner or admin role")
        request.organization_scope = scope
        set_organization(request, scope.public_id)
        return [scope.organization]


class SystemHealthView(_AdminTier):
    @_schema(
        "routiq_admin_system_health",
        "System health: database and cache checks, figures of what the caller may see",
        note=ADMIN_NOTE,
        responses={200: s.SystemHealthOutput},
        errors=(400, 401, 403, 404, 429),
        header=True,
    )
    def get(self, request):
        return Response(s.SystemHealthOutput(selectors.system_health(organizations=self.organizations(request))).data)


class DatabaseCleanupView(_AdminTier):
    @_schema(
        "routiq_admin_database_cleanup",
        "Delete old operational rows (sync runs, expired idempotency records); never young audit logs",
        note=ADMIN_NOTE + " Every cleanup is an audit event.",
        responses={200: s.CleanupOutput},
        errors=(400, 401, 403, 404, 429),
        parameters=[DAYS_OLD_PARAMETER],
        header=True,
    )
    def post(self, request):
        days_old = parse_int_param(
            request.query_params, "days_old", default=90, minimum=ops.DAYS_OLD_MIN, maximum=ops.DAYS_OLD_MAX
        )
        organizations = self.organizations(request)
        result = ops.database_cleanup(organizations=organizations, days_old=days_old, actor=self.actor(request))
        return Response(s.CleanupOutput(result).data)
