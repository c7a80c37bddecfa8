"""Routiq dashboard views through HTTP (spec: routiq-backend-api.md, "Dashboard & Analytics"): the summary's
numbers equal what the patient lists return, engagement and sync percentages, integration status, the activity
list (sync runs, newest first, `limit`, minutes_ago), another organization's runs never shown, flat queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from core.time import utc_now
from sync.models import ClinikoConnection, SyncRun
from tests.sync.read_factories import bearer, make_appointment, make_member, make_organization, make_patient

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
SUMMARY_KEYS = {
    "organization_id", "total_patients", "active_patients", "patients_with_upcoming", "patients_with_recent",
    "total_upcoming_appointments", "total_recent_appointments", "total_all_appointments",
    "avg_upcoming_per_patient", "avg_recent_per_patient", "avg_total_per_patient", "engagement_rate",
    "last_sync_time", "synced_patients", "sync_percentage", "integration_status", "activity_status", "generated_at",
}  # fmt: skip
ACTIVITY_KEYS = {
    "id", "source_system", "operation_type", "status", "records_processed", "records_success", "records_failed",
    "started_at", "completed_at", "activity_type", "description", "minutes_ago",
}  # fmt: skip


@pytest.fixture
def http(frozen_ratelimit_clock):
    return Client(raise_request_exception=False)


@pytest.fixture
def org(db):
    return make_organization("Clinic A")


@pytest.fixture
def owner(org):
    return make_member("owner", "owner", org)


def _ok(response) -> dict:
    assert response.status_code == 200, response.content[:400]
    return response.json()


def _seed(org):
    now = utc_now()
    synced = now - timedelta(hours=1)
    a = make_patient(org, "A", last_synced_at=synced)
    make_appointment(a, now - 2 * DAY)
    make_appointment(a, now + 2 * DAY)
    make_appointment(a, now + 3 * DAY)
    b = make_patient(org, "B", last_synced_at=synced)
    make_appointment(b, now - 40 * DAY)
    make_appointment(b, now - 45 * DAY)
    c = make_patient(org, "C", external_id=None)
    make_appointment(c, now - 5 * DAY, cancelled=True)
    make_appointment(c, now - 6 * DAY)
    make_patient(org, "D", external_id=None)
    make_patient(org, "Archived", archived=True, last_synced_at=synced)


def test_dashboard_numbers_equal_the_lists(http, org, owner):
    _seed(org)
    auth = bearer(owner)
    body = _ok(http.get(f"/api/v1/dashboard/{org.public_id}", **auth))
    assert set(body) == {"success", "organization_id", "summary", "recent_activity", "timestamp"}
    summary = body["summary"]
    assert set(summary) == SUMMARY_KEYS
    listed = _ok(http.get(f"/api/v1/patients/{org.public_id}/patients", **auth))
    with_appointments = _ok(http.get(f"/api/v1/patients/{org.public_id}/patients/with-appointments", **auth))
    active_summary = _ok(http.get(f"/api/v1/patients/{org.public_id}/active/summary", **auth))
    assert summary["total_patients"] == 4  # archived left out
    assert summary["active_patients"] == listed["total_count"] == active_summary["total_active_patients"] == 2
    assert summary["patients_with_upcoming"] == with_appointments["total_count"] == 1
    assert summary["patients_with_recent"] == active_summary["patients_with_recent_appointments"] == 2
    assert summary["total_upcoming_appointments"] == 2
    assert summary["total_recent_appointments"] == 2
    assert summary["total_all_appointments"] == 6  # the cancelled one never counts
    assert summary["avg_upcoming_per_patient"] == 1.0
    assert summary["avg_total_per_patient"] == 3.0
    assert summary["engagement_rate"] == 50.0
    assert summary["synced_patients"] == 2 and summary["sync_percentage"] == 50.0
    assert summary["integration_status"] == "Not connected"
    assert summary["activity_status"] == "Active"
    assert summary["last_sync_time"] is None


def test_summary_only_and_integration_status(http, org, owner):
    _seed(org)
    ClinikoConnection.objects.create(organization=org, api_key="key-au4", shard="au4")
    body = _ok(http.get(f"/api/v1/dashboard/{org.public_id}/summary", **bearer(owner)))
    assert set(body) == {"success", "organization_id", "summary", "timestamp"}
    assert body["summary"]["integration_status"] == "Connected"
    ClinikoConnection.objects.filter(organization=org).update(credentials_valid=False)
    body = _ok(http.get(f"/api/v1/dashboard/{org.public_id}/summary", **bearer(owner)))
    assert body["summary"]["integration_status"] == "Credentials invalid"


def test_empty_organization(http, org, owner):
    summary = _ok(http.get(f"/api/v1/dashboard/{org.public_id}/summary", **bearer(owner)))["summary"]
    assert summary["total_patients"] == summary["active_patients"] == 0
    assert summary["engagement_rate"] == 0.0 and summary["avg_total_per_patient"] == 0.0
    assert summary["activity_status"] == "Inactive"


def _run(org, *, minutes_ago: float, **fields) -> SyncRun:
    started = utc_now() - timedelta(minutes=minutes_ago)
    return SyncRun.objects.create(organization=org, created_at=started, started_at=started, **fields)


def test_activity_lists_sync_runs_newest_first(http, org, owner):
    old = _run(
        org,
        minutes_ago=120,
        status=SyncRun.Status.COMPLETED,
        completed_at=utc_now() - timedelta(minutes=114),
        records_processed=651,
        records_success=651,
    )
    newer = _run(org, minutes_ago=54.2, status=SyncRun.Status.FAILED, mode=SyncRun.Mode.PATIENTS_ONLY, incremental=True)
    _run(make_organization("Clinic B"), minutes_ago=1, status=SyncRun.Status.COMPLETED)
    body = _ok(http.get(f"/api/v1/dashboard/{org.public_id}/activity", **bearer(owner)))
    rows = body["recent_activity"]
    assert [row["id"] for row in rows] == [newer.public_id, old.public_id]
    assert body["total_count"] == 2
    assert set(rows[0]) == ACTIVITY_KEYS
    assert rows[0]["operation_type"] == "patients_only_sync"
    assert rows[0]["description"].startswith("Incremental")
    assert 54.0 <= rows[0]["minutes_ago"] <= 55.0
    assert rows[1] | {"minutes_ago": 0} == {
        "id": old.public_id,
        "source_system": "cliniko",
        "operation_type": "comprehensive_sync",
        "status": "completed",
        "records_processed": 651,
        "records_success": 651,
        "records_failed": 0,
        "started_at": rows[1]["started_at"],
        "completed_at": rows[1]["completed_at"],
        "activity_type": "sync",
        "description": "Comprehensive patient and appointment sync",
        "minutes_ago": 0,
    }
    limited = _ok(http.get(f"/api/v1/dashboard/{org.public_id}/activity?limit=1", **bearer(owner)))
    assert [row["id"] for row in limited["recent_activity"]] == [newer.public_id]
    dashboard = _ok(http.get(f"/api/v1/dashboard/{org.public_id}", **bearer(owner)))
    assert [row["id"] for row in dashboard["recent_activity"]] == [newer.public_id, old.public_id]
    # The last completed run is the dashboard's last sync time.
    assert dashboard["summary"]["last_sync_time"] == rows[1]["completed_at"]


@pytest.mark.parametrize("limit", ["0", "101", "x", "-1"])
def test_activity_limit_is_checked(http, org, owner, limit):
    response = http.get(f"/api/v1/dashboard/{org.public_id}/activity?limit={limit}", **bearer(owner))
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error", "detail", "timestamp", "path"} and "limit" in body["detail"]


def _queries(http, org, owner, count: int) -> int:
    now = utc_now()
    for i in range(count):
        patient = make_patient(org, f"Q{i}")
        make_appointment(patient, now - DAY)
        make_appointment(patient, now + DAY)
        _run(org, minutes_ago=i + 1, status=SyncRun.Status.COMPLETED)
    with CaptureQueriesContext(connection) as queries:
        body = _ok(http.get(f"/api/v1/dashboard/{org.public_id}", **bearer(owner)))
    assert body["summary"]["active_patients"] == count
    return len(queries)


def test_dashboard_queries_flat_in_patients(http, org, owner):
    small = _queries(http, org, owner, 5)
    other = make_organization("Clinic C")
    large = _queries(http, other, make_member("owner-c", "owner", other), 50)
    assert small == large


# --- After a real sync: the numbers still equal the lists ------------------------------------------------------


def _drive_sync(organization, engine_clock):
    """Run a comprehensive sync chunk by chunk, as the worker would (chunks recorded, not queued)."""
    import uuid as _uuid

    from core.request_budget import RequestBudget
    from sync import services
    from tests.sync.read_factories import ACTOR

    run, started = services.sync_run_start(organization=organization, mode="comprehensive", trigger="api", actor=ACTOR)
    assert started
    budget = RequestBudget(
        f"cliniko-read-{_uuid.uuid4().hex[:8]}",
        limit=10_000,
        window_seconds=61,
        redis_url="",
        clock=engine_clock.time,
        sleep=engine_clock.sleep,
    )
    for _ in range(200):
        run.refresh_from_db()
        client = services.engine_client(
            ClinikoConnection.objects.get(organization=organization),
            clock=engine_clock.time,
            sleep=engine_clock.sleep,
            budget=budget,
            backoff_seconds=0.5,
        )
        result = services.sync_run_chunk(run_id=run.pk, seq=run.cursor["seq"], client=client)
        if result["result"] == "deferred":
            engine_clock.sleep(result["countdown"])
        if result["result"] == "finished":
            run.refresh_from_db()
            return run
    raise AssertionError("the sync did not finish")


class _Clock:
    def __init__(self):
        self.now = 1_750_000_000.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _assert_numbers_equal_lists(http, org, owner) -> dict:
    auth = bearer(owner)
    summary = _ok(http.get(f"/api/v1/dashboard/{org.public_id}/summary", **auth))["summary"]
    listed = _ok(http.get(f"/api/v1/patients/{org.public_id}/patients?limit=500", **auth))
    with_appointments = _ok(http.get(f"/api/v1/patients/{org.public_id}/patients/with-appointments?limit=500", **auth))
    active = _ok(http.get(f"/api/v1/patients/{org.public_id}/active/summary", **auth))
    types = _ok(http.get(f"/api/v1/patients/{org.public_id}/patients/appointment-types/summary", **auth))
    patients = listed["patients"]
    assert summary["active_patients"] == listed["total_count"] == len(patients) == active["total_active_patients"]
    assert summary["patients_with_upcoming"] == with_appointments["total_count"]
    assert summary["patients_with_upcoming"] == sum(1 for p in patients if p["upcoming_appointment_count"])
    assert summary["patients_with_recent"] == sum(1 for p in patients if p["recent_appointment_count"])
    assert summary["total_upcoming_appointments"] == sum(p["upcoming_appointment_count"] for p in patients)
    assert summary["total_recent_appointments"] == sum(p["recent_appointment_count"] for p in patients)
    assert sum(row["patient_count"] for row in types["appointment_types"]) == listed["total_count"]
    assert summary["synced_patients"] == summary["total_patients"]
    return summary


def test_numbers_equal_lists_after_a_full_and_an_incremental_sync(http, org, owner, settings):
    from tests.cliniko_stub import ClinikoStub

    settings.OUTBOUND_ALLOW_LOOPBACK = True
    settings.CLINIKO_USER_AGENT = "Routiq tests (dev@example.com)"
    from sync import services
    from tests.sync.read_factories import ACTOR

    with ClinikoStub() as stub:
        key = stub.add_account("MS0xreadtests0000000000000000000001-au2")
        ids = stub.generate(key, patients=40, appointments=90)
        services.cliniko_connect(organization=org, api_key=key, base_url=stub.base_url, actor=ACTOR)
        clock = _Clock()
        assert _drive_sync(org, clock).status == "completed"
        full = _assert_numbers_equal_lists(http, org, owner)
        assert full["active_patients"] > 0 and full["total_patients"] == 40
        # Changes in Cliniko, then an incremental run.
        account = stub.account(key)
        live = [i for i in ids["appointments"] if not account.appointments[i].get("cancelled_at")]
        upcoming = [i for i in live if account.appointments[i]["starts_at"] > utc_now().isoformat()]
        stub.cancel_appointment(key, upcoming[0])
        stub.archive_patient(key, ids["patients"][0])
        added = stub.add_patient(key, first_name="Newly", last_name="Added", mobile="0411 222 333")
        stub.add_appointment(key, patient_id=added["id"], starts_at=utc_now() + 2 * DAY)
        run = _drive_sync(org, clock)
        assert run.status == "completed" and run.incremental is True
        after = _assert_numbers_equal_lists(http, org, owner)
        assert after["total_patients"] == 40  # one archived, one added
        names = [
            p["name"]
            for p in _ok(http.get(f"/api/v1/patients/{org.public_id}/patients?limit=500", **bearer(owner)))["patients"]
        ]
        assert "Newly Added" in names
        assert after["last_sync_time"] is not None
