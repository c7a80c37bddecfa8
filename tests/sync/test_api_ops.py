"""Routiq sync, Cliniko and administration operations through the public API (sync/api/ops.py), as a
dashboard calls them: platform tokens of members with each role, another organization's ids, the staff
tier, and the Cliniko stand-in on 127.0.0.1 for the connection test."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.models import AuditEvent
from core.actors import Actor
from core.time import utc_now
from sync import services
from sync.models import ClinikoConnection, SyncRun
from tests.cliniko_stub import ClinikoStub
from tests.sync.read_factories import bearer, make_appointment, make_member, make_organization, make_patient

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")
KEY = "MS0xLXRlc3Qta2V5-au2"
USER_AGENT = "Routiq tests (tests@example.com)"


@pytest.fixture(autouse=True)
def cliniko_settings(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    settings.CLINIKO_USER_AGENT = USER_AGENT


@pytest.fixture
def stub():
    with ClinikoStub() as server:
        server.add_account(KEY)
        yield server


@pytest.fixture
def world(db):
    clinic = make_organization("Ops clinic")
    other = make_organization("Other ops clinic")
    users = {
        "owner": make_member("ops-owner", "owner", clinic),
        "admin": make_member("ops-admin", "admin", clinic),
        "staff": make_member("ops-staff", "staff", clinic),
        "viewer": make_member("ops-viewer", "viewer", clinic),
        "other_owner": make_member("ops-other-owner", "owner", other),
    }
    platform_staff = make_member("ops-platform-staff", "viewer")
    platform_staff.is_staff = True
    platform_staff.save(update_fields=["is_staff"])
    users["platform_staff"] = platform_staff
    return {"clinic": clinic, "other": other, **users}


def connect(organization, base_url: str = "", key: str = KEY):
    return services.cliniko_connect(organization=organization, api_key=key, base_url=base_url, actor=ACTOR)


def call(method: str, path: str, user=None, **headers):
    client = APIClient()
    credentials = bearer(user) if user is not None else {}
    return getattr(client, method)(path, **credentials, **headers)


def routiq_error(response, status: int, *, names: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) >= {"error", "detail", "timestamp", "path"}, body
    assert "data" not in body and "sync_id" not in body
    if names is not None:
        assert names in body["detail"], body
    return body


def org_header(organization) -> dict:
    return {"HTTP_X_ORGANIZATION_ID": organization.public_id}


def finished_run(organization, *, status="completed", age_days=0, duration_seconds=60, **fields) -> SyncRun:
    started = utc_now() - timedelta(days=age_days, minutes=10)
    return SyncRun.objects.create(
        organization=organization,
        status=status,
        created_at=started,
        started_at=started,
        completed_at=started + timedelta(seconds=duration_seconds),
        **fields,
    )


# --- Triggers --------------------------------------------------------------------------------------------


def test_trigger_starts_a_run_and_a_second_trigger_returns_the_running_one(world):
    connect(world["clinic"])
    first = call("post", "/api/v1/sync/trigger", world["owner"], **org_header(world["clinic"]))
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["sync_started"] is True and body["message"] == "Sync started successfully"
    assert body["sync_id"].startswith("sync_") and body["sync_mode"] == "comprehensive"
    assert body["organization_id"] == world["clinic"].public_id
    run = SyncRun.objects.get(public_id=body["sync_id"])
    assert run.organization == world["clinic"] and run.trigger == "api" and run.requested_by == world["owner"]

    again = call("post", "/api/v1/sync/scheduler/trigger", world["admin"], **org_header(world["clinic"]))
    assert again.status_code == 200, again.content
    assert again.json()["sync_started"] is False and again.json()["sync_id"] == run.public_id
    cliniko = call("post", f"/api/v1/cliniko/sync/{world['clinic'].public_id}?mode=basic", world["owner"])
    assert cliniko.json()["sync_started"] is False and cliniko.json()["sync_id"] == run.public_id
    assert SyncRun.objects.filter(organization=world["clinic"]).count() == 1


def test_trigger_without_a_connection_is_a_409(world):
    response = call("post", "/api/v1/sync/trigger", world["owner"], **org_header(world["clinic"]))
    routiq_error(response, 409, names="Cliniko connection")
    assert not SyncRun.objects.exists()


@pytest.mark.parametrize("role", ["staff", "viewer"])
def test_only_owners_and_admins_trigger(world, role):
    connect(world["clinic"])
    org = world["clinic"].public_id
    for method, path, headers in [
        ("post", "/api/v1/sync/trigger", org_header(world["clinic"])),
        ("post", "/api/v1/sync/scheduler/trigger", org_header(world["clinic"])),
        ("post", f"/api/v1/cliniko/sync/{org}", {}),
        ("post", f"/api/v1/cliniko/import-patients/{org}", {}),
        ("get", f"/api/v1/cliniko/test-connection/{org}", {}),
        ("get", f"/api/v1/cliniko/debug/{org}", {}),
    ]:
        routiq_error(call(method, path, world[role], **headers), 403)
    assert not SyncRun.objects.exists()


def test_another_organizations_owner_cannot_trigger_or_read_it(world):
    connect(world["clinic"])
    org = world["clinic"].public_id
    outsider = world["other_owner"]
    routiq_error(call("post", "/api/v1/sync/trigger", outsider, **org_header(world["clinic"])), 403)
    routiq_error(call("post", f"/api/v1/cliniko/sync/{org}", outsider), 403)
    routiq_error(call("get", f"/api/v1/cliniko/status/{org}", outsider), 403)
    routiq_error(call("get", f"/api/v1/sync/history/{org}", outsider), 403)
    routiq_error(call("get", "/api/v1/cliniko/status/org_doesnotexist1", world["owner"]), 404)
    assert not SyncRun.objects.exists()


def test_anonymous_is_401_on_every_operation(world):
    org = world["clinic"].public_id
    for method, path in [
        ("post", "/api/v1/sync/trigger"),
        ("get", "/api/v1/sync/scheduler/status"),
        ("get", "/api/v1/sync/progress/sync_abc"),
        ("get", f"/api/v1/sync/history/{org}"),
        ("post", f"/api/v1/cliniko/sync/{org}"),
        ("get", f"/api/v1/cliniko/status/{org}"),
        ("get", "/api/v1/admin/monitoring/system-health"),
        ("post", "/api/v1/admin/database/cleanup"),
    ]:
        routiq_error(call(method, path), 401)


def test_cliniko_sync_takes_the_mode_and_import_patients_is_patients_only(world):
    connect(world["clinic"])
    connect(world["other"])
    org = world["clinic"].public_id
    routiq_error(call("post", f"/api/v1/cliniko/sync/{org}?mode=everything", world["owner"]), 400, names="mode")
    assert not SyncRun.objects.exists()

    response = call("post", f"/api/v1/cliniko/sync/{org}?mode=basic", world["owner"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True and body["sync_mode"] == "basic" and body["sync_started"] is True
    assert body["message"] == "Basic Cliniko sync started successfully"
    assert SyncRun.objects.get(public_id=body["sync_id"]).mode == "basic"

    other = world["other"].public_id
    imported = call("post", f"/api/v1/cliniko/import-patients/{other}", world["other_owner"]).json()
    run = SyncRun.objects.get(public_id=imported["sync_id"])
    assert run.mode == "patients-only" and run.organization == world["other"]
    assert imported["sync_mode"] == "patients-only"


def test_sync_endpoints_answer_in_the_sync_tier_and_cliniko_in_the_api_tier(world):
    org = world["clinic"].public_id
    sync = call("get", "/api/v1/sync/scheduler/status", world["owner"], **org_header(world["clinic"]))
    assert sync.status_code == 200 and sync["X-RateLimit-Limit"] == "100"
    cliniko = call("get", f"/api/v1/cliniko/status/{org}", world["owner"])
    assert cliniko.status_code == 200 and cliniko["X-RateLimit-Limit"] == "1000"
    admin = call("get", "/api/v1/admin/monitoring/system-health", world["owner"])
    assert admin.status_code == 200 and admin["X-RateLimit-Limit"] == "50"


# --- Status, progress, history ---------------------------------------------------------------------------


def test_scheduler_status_shows_the_running_run(world):
    headers = org_header(world["clinic"])
    before = call("get", "/api/v1/sync/scheduler/status", world["viewer"], **headers).json()
    assert before["sync_running"] is False and before["scheduler_active"] is False
    assert before["cliniko_connected"] is False and before["last_sync_time"] is None
    connect(world["clinic"])
    finished_run(world["clinic"])
    run, _ = services.sync_run_start(organization=world["clinic"], mode="comprehensive", trigger="api", actor=ACTOR)
    after = call("get", "/api/v1/sync/scheduler/status", world["viewer"], **headers).json()
    assert after["sync_running"] is True and after["current_sync_id"] == run.public_id
    assert after["scheduler_active"] is True and after["last_sync_time"] is not None
    assert after["organization_id"] == world["clinic"].public_id


def test_progress_of_own_run_and_404_for_another_organizations(world):
    connect(world["clinic"])
    run, _ = services.sync_run_start(organization=world["clinic"], mode="comprehensive", trigger="api", actor=ACTOR)
    SyncRun.objects.filter(pk=run.pk).update(
        status="running", started_at=utc_now() - timedelta(minutes=5), total_steps=5, completed_steps=2,
        records_total=650, records_processed=490, current_step="appointments",
        errors=[{"step": "patients", "code": "invalid_phone", "at": utc_now().isoformat()}],
    )  # fmt: skip
    response = call("get", f"/api/v1/sync/progress/{run.public_id}", world["viewer"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["sync_id"] == run.public_id and body["status"] == "running"
    assert body["organization_id"] == world["clinic"].public_id
    assert body["total_steps"] == 5 and body["completed_steps"] == 2 and body["records_processed"] == 490
    assert 0 < body["progress_percentage"] < 100 and body["estimated_completion"] is not None
    assert body["errors"] == [{"step": "patients", "code": "invalid_phone", "at": body["errors"][0]["at"]}]

    other = routiq_error(call("get", f"/api/v1/sync/progress/{run.public_id}", world["other_owner"]), 404)
    unknown = routiq_error(call("get", "/api/v1/sync/progress/sync_unknownrun123", world["owner"]), 404)
    assert other["detail"] == unknown["detail"]
    # A header naming another organization than the run's: also 404, nothing of the run.
    mismatch = call("get", f"/api/v1/sync/progress/{run.public_id}", world["owner"], **org_header(world["other"]))
    routiq_error(mismatch, 404)
    # A caller who belongs to no organization at all: 403, as on every organization-scoped route.
    nobody = make_member("ops-nobody", "viewer")
    routiq_error(call("get", f"/api/v1/sync/progress/{run.public_id}", nobody), 403)


def test_history_totals_recent_runs_and_limit(world):
    org = world["clinic"]
    finished_run(org, status="completed", age_days=3, duration_seconds=100, records_processed=10,
                 records_success=10, patients_processed=7, appointments_processed=3)  # fmt: skip
    finished_run(org, status="completed", age_days=2, duration_seconds=300)
    finished_run(org, status="failed", age_days=1, duration_seconds=200, errors=[{"step": "x", "code": "y"}])
    finished_run(org, status="partial", age_days=0, duration_seconds=400, records_failed=2)
    finished_run(world["other"], status="failed")
    response = call("get", f"/api/v1/sync/history/{org.public_id}?limit=2", world["staff"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["total_syncs"], body["successful_syncs"], body["failed_syncs"], body["partial_syncs"]) == (4, 2, 1, 1)
    assert body["average_sync_duration_seconds"] == pytest.approx(250.0)
    assert [run["status"] for run in body["recent_syncs"]] == ["partial", "failed"]
    assert body["recent_syncs"][0]["records_failed"] == 2
    assert body["last_successful_sync_at"] is not None and body["last_sync_at"] is not None
    oldest = call("get", f"/api/v1/sync/history/{org.public_id}?limit=100", world["staff"]).json()["recent_syncs"][-1]
    assert oldest["metadata"] == {
        "sync_type": "comprehensive", "trigger": "api", "incremental": False,
        "patients_processed": 7, "appointments_processed": 3,
    }  # fmt: skip
    for bad in ("0", "101", "ten", "-1", "1.5"):
        routiq_error(
            call("get", f"/api/v1/sync/history/{org.public_id}?limit={bad}", world["owner"]), 400, names="limit"
        )


def test_history_queries_are_flat_in_the_number_of_runs(world):
    org = world["clinic"]

    def queries(runs: int) -> int:
        SyncRun.objects.filter(organization=org).delete()
        for index in range(runs):
            finished_run(org, age_days=index)
        with CaptureQueriesContext(db_connection) as captured:
            response = call("get", f"/api/v1/sync/history/{org.public_id}?limit=50", world["owner"])
        assert len(response.json()["recent_syncs"]) == runs
        return len(captured.captured_queries)

    assert queries(2) == queries(20)


# --- Cliniko status, connection test, debug ---------------------------------------------------------------


def test_cliniko_status(world):
    org = world["clinic"]
    body = call("get", f"/api/v1/cliniko/status/{org.public_id}", world["viewer"]).json()
    assert body["cliniko_connected"] is False and body["total_patients"] == 0 and body["api_region"] is None
    connect(org)
    make_patient(org, "Cliniko One")
    make_patient(org, "Cliniko Archived", archived=True)
    make_patient(org, "Mark Only", external_id=None)
    make_patient(world["other"], "Elsewhere")
    finished_run(org, status="completed")
    body = call("get", f"/api/v1/cliniko/status/{org.public_id}", world["viewer"]).json()
    assert body["cliniko_connected"] is True and body["api_region"] == "au2"
    assert body["total_patients"] == 1 and body["sync_enabled"] is True
    assert body["credentials_valid"] is None and body["last_sync"] is not None


def test_connection_test_against_the_stand_in(world, stub):
    org = world["clinic"]
    path = f"/api/v1/cliniko/test-connection/{org.public_id}"
    routiq_error(call("get", path, world["owner"]), 409)
    connect(org, base_url=stub.base_url)
    response = call("get", path, world["admin"])
    assert response.status_code == 200, response.content
    assert response.json()["success"] is True and response.json()["code"] is None
    assert ClinikoConnection.objects.get(organization=org).credentials_valid is True
    assert stub.requests and stub.requests[-1].api_key == KEY

    connect(org, base_url=stub.base_url, key="MS0xLXdyb25nLWtleQ-au2")  # a key Cliniko does not know
    refused = call("get", path, world["owner"]).json()
    assert refused["success"] is False and refused["connected"] is False and refused["code"]
    assert ClinikoConnection.objects.get(organization=org).credentials_valid is False
    assert KEY not in str(refused) and "wrong" not in str(refused)


def test_debug_shows_counts_and_error_codes_never_records(world):
    org = world["clinic"]
    connect(org)
    patient = make_patient(org, "Zelda Secretname", email="zelda@example.com")
    make_appointment(patient, utc_now() + timedelta(days=2), notes="Private treatment note")
    finished_run(org, status="failed", errors=[{"step": "patients", "code": "cliniko_http_500", "at": None}])
    response = call("get", f"/api/v1/cliniko/debug/{org.public_id}", world["owner"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["counts"]["patients"] == 1 and body["counts"]["appointments_from_cliniko"] == 1
    assert body["last_sync"]["status"] == "failed"
    assert body["last_sync"]["errors"][0]["code"] == "cliniko_http_500"
    assert body["connection"]["connected"] is True and body["connection"]["api_region"] == "au2"
    text = response.content.decode()
    for secret in ("Zelda", "Secretname", "zelda@example.com", "Private treatment", KEY, "cliniko.com"):
        assert secret not in text


# --- Administration ---------------------------------------------------------------------------------------


def test_system_health_scopes_its_figures(world):
    make_patient(world["clinic"], "Recent Patient")
    active = make_patient(world["clinic"], "Active Patient")
    make_appointment(active, utc_now() + timedelta(days=1))
    make_patient(world["other"], "Other Patient")
    connect(world["other"])

    owner = call("get", "/api/v1/admin/monitoring/system-health", world["owner"])
    assert owner.status_code == 200, owner.content
    body = owner.json()
    assert body["scope"] == "organization" and body["database"] == {"status": "healthy", "connected": True}
    assert body["metrics"]["total_organizations"] == 1 and body["metrics"]["total_patients"] == 2
    assert body["metrics"]["active_patients"] == 1
    assert body["integrations"]["cliniko"]["total_connections"] == 0

    staff = call("get", "/api/v1/admin/monitoring/system-health", world["platform_staff"]).json()
    assert staff["scope"] == "platform" and staff["metrics"]["total_patients"] == 3
    assert staff["metrics"]["total_organizations"] >= 2 and staff["integrations"]["cliniko"]["total_connections"] == 1
    narrowed = call(
        "get", "/api/v1/admin/monitoring/system-health", world["platform_staff"], **org_header(world["other"])
    ).json()
    assert narrowed["scope"] == "organization" and narrowed["metrics"]["total_patients"] == 1

    for role in ("staff", "viewer"):
        routiq_error(call("get", "/api/v1/admin/monitoring/system-health", world[role]), 403)
    routiq_error(
        call("get", "/api/v1/admin/monitoring/system-health", world["owner"], **org_header(world["other"])), 403
    )


def test_cleanup_deletes_old_runs_of_the_callers_organization_only(world):
    old = finished_run(world["clinic"], age_days=120)
    young = finished_run(world["clinic"], age_days=10)
    old_other = finished_run(world["other"], age_days=120)
    connect(world["clinic"])
    active, _ = services.sync_run_start(organization=world["clinic"], mode="basic", trigger="api", actor=ACTOR)
    SyncRun.objects.filter(pk=active.pk).update(created_at=utc_now() - timedelta(days=200))
    audit_before = AuditEvent.objects.count()

    response = call("post", "/api/v1/admin/database/cleanup?days_old=90", world["owner"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True and body["days_cleaned"] == 90 and body["scope"] == "organization"
    assert body["sync_runs_deleted"] == 1 and body["audit_logs_deleted"] == 0
    assert body["cleanup_results"][0] == "Deleted 1 old sync logs"
    assert any("audit logs are kept" in line and "retention" in line for line in body["cleanup_results"])
    remaining = set(SyncRun.objects.values_list("pk", flat=True))
    assert old.pk not in remaining and {young.pk, old_other.pk, active.pk} <= remaining
    # Nothing of the audit trail went; the cleanup itself is one more audit event.
    assert AuditEvent.objects.count() == audit_before + 1
    event = AuditEvent.objects.get(action="sync.database_cleanup")
    assert event.organization_id == world["clinic"].public_id and event.metadata["sync_runs_deleted"] == 1


def test_cleanup_never_deletes_audit_rows_even_old_ones(world):
    """Audit rows a few years old (younger than the retention) stay whatever days_old says."""
    AuditEvent.objects.create(created_at=utc_now() - timedelta(days=3 * 365), action="tests.old", metadata={})
    AuditEvent.objects.create(created_at=utc_now() - timedelta(days=100), action="tests.recent", metadata={})
    before = set(AuditEvent.objects.values_list("pk", flat=True))
    body = call("post", "/api/v1/admin/database/cleanup?days_old=1", world["platform_staff"]).json()
    assert body["audit_logs_deleted"] == 0
    assert before <= set(AuditEvent.objects.values_list("pk", flat=True))


def test_cleanup_platform_wide_only_for_staff_and_roles(world):
    finished_run(world["clinic"], age_days=120)
    finished_run(world["other"], age_days=120)
    for role in ("staff", "viewer"):
        routiq_error(call("post", "/api/v1/admin/database/cleanup", world[role]), 403)
    assert SyncRun.objects.count() == 2
    for bad in ("0", "abc", "99999", "-5"):
        routiq_error(
            call("post", f"/api/v1/admin/database/cleanup?days_old={bad}", world["owner"]), 400, names="days_old"
        )
    assert SyncRun.objects.count() == 2
    body = call("post", "/api/v1/admin/database/cleanup?days_old=30", world["platform_staff"]).json()
    assert body["scope"] == "platform" and body["sync_runs_deleted"] == 2
    assert not SyncRun.objects.exists()
    event = AuditEvent.objects.get(action="sync.database_cleanup")
    assert event.metadata["scope"] == "platform" and event.actor_id == str(world["platform_staff"].pk)


# --- Concurrency (PostgreSQL) ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_triggers_make_one_run(require_postgres, world, monkeypatch):
    queued = []
    monkeypatch.setattr(services, "_enqueue_chunk", lambda run_id, seq, countdown=0: queued.append(run_id))
    connect(world["clinic"])
    token = bearer(world["owner"])
    headers = {**token, **org_header(world["clinic"])}
    answers, barrier = [], threading.Barrier(6)

    def trigger():
        try:
            barrier.wait()
            response = APIClient().post("/api/v1/sync/trigger", **headers)
            answers.append((response.status_code, response.json()))
        finally:
            db_connection.close()

    threads = [threading.Thread(target=trigger) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in answers] == [200] * 6, answers
    assert sum(body["sync_started"] for _, body in answers) == 1
    assert len({body["sync_id"] for _, body in answers}) == 1
    assert SyncRun.objects.filter(organization=world["clinic"]).count() == 1
    assert len(queued) == 1  # one first chunk, for the one run


# --- Clerk session tokens (OIDC) ----------------------------------------------------------------------------


@pytest.fixture
def clerk(settings, frozen_ratelimit_clock):
    from accounts import authentication
    from tests.clerk_stub import ClerkStub

    authentication._jwks_clients.clear()
    with ClerkStub() as stub:
        stub.configure(settings)
        yield stub
    authentication._jwks_clients.clear()


@pytest.mark.parametrize("version", [1, 2])
def test_clerk_tokens_act_in_their_active_organization_with_their_role(clerk, version):
    clinic = make_organization("Clerk ops clinic", clerk_organization_id="org_2xwOpsClinic0001")
    other = make_organization("Clerk ops other", clerk_organization_id="org_2xwOpsClinic0002")
    connect(clinic)
    connect(other)
    other_run, _ = services.sync_run_start(organization=other, mode="basic", trigger="api", actor=ACTOR)

    def token(org, role):
        return {"HTTP_AUTHORIZATION": f"Bearer {clerk.token(version=version, org_id=org, org_role=role)}"}

    admin = token(clinic.clerk_organization_id, "org:admin")
    started = call("post", "/api/v1/sync/trigger", **admin)
    assert started.status_code == 200, started.content
    assert started.json()["sync_started"] is True and started.json()["organization_id"] == clinic.clerk_organization_id
    assert SyncRun.objects.get(public_id=started.json()["sync_id"]).organization == clinic
    progress = call("get", f"/api/v1/sync/progress/{started.json()['sync_id']}", **admin)
    assert progress.status_code == 200 and progress.json()["organization_id"] == clinic.clerk_organization_id
    routiq_error(call("get", f"/api/v1/sync/progress/{other_run.public_id}", **admin), 404)
    health = call("get", "/api/v1/admin/monitoring/system-health", **admin)
    assert health.status_code == 200 and health.json()["scope"] == "organization"
    # The token's active organization is another one than the path's: 403.
    routiq_error(call("post", f"/api/v1/cliniko/sync/{other.public_id}", **admin), 403)
    # A member (Clerk's org:member -> staff) reads but does not trigger or administer.
    member = token(clinic.clerk_organization_id, "org:member")
    assert call("get", f"/api/v1/cliniko/status/{clinic.public_id}", **member).status_code == 200
    routiq_error(call("post", f"/api/v1/cliniko/import-patients/{clinic.public_id}", **member), 403)
    routiq_error(call("post", "/api/v1/admin/database/cleanup", **member), 403)


def test_bodiless_posts_refuse_bytes_that_are_not_a_json_object(world):
    """Found by the schemathesis gate: undecodable bytes posted to the cleanup answered 200. These POSTs read
    no body: empty or a JSON object is fine, anything else is a 400 and nothing runs."""
    old = finished_run(world["clinic"], age_days=120)
    client = APIClient()
    client.credentials(**bearer(world["owner"]))
    path = "/api/v1/admin/database/cleanup?days_old=90"
    for raw in (b"\xff\xfe", b"[1, 2]", b'"text"', b"{"):
        response = client.generic("POST", path, raw, content_type="application/json")
        routiq_error(response, 400)
    assert SyncRun.objects.filter(pk=old.pk).exists()  # nothing ran
    assert client.generic("POST", path, b'{"ignored": true}', content_type="application/json").status_code == 200
    assert not SyncRun.objects.filter(pk=old.pk).exists()
    assert client.post("/api/v1/sync/trigger", b"\xff", content_type="application/json").status_code == 400
