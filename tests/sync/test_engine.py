"""The Cliniko sync engine (sync/services.py) against the Cliniko stand-in (tests/cliniko_stub.py) on 127.0.0.1.

Chunks run synchronously: the tests call sync.services.sync_run_chunk in a loop (what the `sync` worker does,
one task per chunk) and record what would have been enqueued. Waits (429 resets, the request budget, retry
backoff) go through an injected FakeClock: no test waits on the wall clock.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection as db_connection

from accounts import services as accounts_services
from audit.models import AuditEvent
from core.actors import Actor
from core.domain import Conflict, Invalid
from core.request_budget import RequestBudget
from core.time import utc_now
from patients.models import Appointment, Patient
from sync import importing, services
from sync.models import ClinikoAppointmentType, ClinikoConnection, ClinikoPractitioner, SyncRun
from tests.cliniko_stub import ClinikoStub

USER_AGENT = "Routiq tests (dev@example.com)"
ACTOR = Actor.system("tests")
REAL_ENQUEUE = services._enqueue_chunk


class FakeClock:
    """time.time/time.sleep stand-ins: sleeping advances the clock at once (thread-safe)."""

    def __init__(self, start: float = 1_750_000_000.0):
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


@pytest.fixture(autouse=True)
def enqueued(settings, monkeypatch):
    """Test settings as the other outbound tests (loopback allowed); the chunk queue recorded, not sent."""
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    settings.CLINIKO_USER_AGENT = USER_AGENT
    settings.CLINIKO_CHUNK_PAGES = 3  # small chunks: every test crosses several chunk boundaries
    calls: list[tuple[int, int, float]] = []
    monkeypatch.setattr(
        services, "_enqueue_chunk", lambda run_id, seq, countdown=0: calls.append((run_id, seq, countdown))
    )
    return calls


@pytest.fixture
def stub():
    with ClinikoStub() as server:
        yield server


@pytest.fixture
def clinic(db):
    return accounts_services.organization_create(name="Clinic A", actor=ACTOR)


@pytest.fixture
def other_clinic(db):
    return accounts_services.organization_create(name="Clinic B", actor=ACTOR)


def new_key(shard: str = "au2") -> str:
    return f"MS0x{uuid.uuid4().hex}-{shard}"


def connect(organization, stub: ClinikoStub, key: str | None = None) -> str:
    key = key or stub.add_account(new_key())
    services.cliniko_connect(organization=organization, api_key=key, base_url=stub.base_url, actor=ACTOR)
    return key


class Engine:
    """Drives runs chunk by chunk, as the worker would, with a fake clock for every wait."""

    def __init__(self, clock: FakeClock | None = None, *, budget_limit: int = 10_000, **client_options):
        self.clock = clock or FakeClock()
        self.budget = RequestBudget(
            f"cliniko-test-{uuid.uuid4().hex[:8]}",
            limit=budget_limit,
            window_seconds=61,
            redis_url="",
            clock=self.clock.time,
            sleep=self.clock.sleep,
        )
        self.client_options = {"backoff_seconds": 0.5, **client_options}
        self.results: list[dict] = []

    def client(self, organization):
        connection = ClinikoConnection.objects.get(organization=organization)
        return services.engine_client(
            connection, clock=self.clock.time, sleep=self.clock.sleep, budget=self.budget, **self.client_options
        )

    def chunk(self, run: SyncRun, *, seq: int | None = None) -> dict:
        run.refresh_from_db()
        result = services.sync_run_chunk(
            run_id=run.pk, seq=run.cursor["seq"] if seq is None else seq, client=self.client(run.organization)
        )
        self.results.append(result)
        if result["result"] == "deferred":
            self.clock.sleep(result["countdown"])  # the countdown the task would be queued with
        return result

    def drive(self, run: SyncRun, *, max_chunks: int = 200) -> SyncRun:
        for _ in range(max_chunks):
            result = self.chunk(run)
            assert result["result"] != "skipped", result
            if result["result"] == "finished":
                run.refresh_from_db()
                return run
        raise AssertionError(f"run not finished after {max_chunks} chunks: {self.results[-3:]}")


def start(organization, mode: str = "comprehensive", **kwargs) -> SyncRun:
    run, started = services.sync_run_start(
        organization=organization, mode=mode, trigger=kwargs.pop("trigger", "api"), actor=ACTOR, **kwargs
    )
    assert started
    return run


def sync(organization, mode: str = "comprehensive", engine: Engine | None = None, **kwargs) -> SyncRun:
    return (engine or Engine()).drive(start(organization, mode, **kwargs))


def snapshot(organization) -> dict:
    """What the sync wrote, comparable across organizations (no row ids, no sync timestamps)."""
    patients = {
        row.external_id: (row.name, row.phone, row.email, row.archived, row.status)
        for row in Patient.objects.filter(organization=organization)
    }
    appointments = {
        row.external_id: (
            row.patient.external_id,
            row.start_time,
            row.duration,
            row.status,
            row.cancelled_at,
            row.appointment_type,
            row.practitioner,
            row.did_not_arrive,
        )
        for row in Appointment.objects.filter(organization=organization).select_related("patient")
    }
    types = set(
        ClinikoAppointmentType.objects.filter(organization=organization).values_list("external_id", "name", "archived")
    )
    practitioners = set(
        ClinikoPractitioner.objects.filter(organization=organization).values_list("external_id", "name", "active")
    )
    return {"patients": patients, "appointments": appointments, "types": types, "practitioners": practitioners}


# --- Connection ----------------------------------------------------------------------------------


def test_connect_validates_encrypts_and_a_reconnect_resets_the_watermark(clinic, stub, settings):
    with pytest.raises(Invalid) as empty:
        services.cliniko_connect(organization=clinic, api_key="  ", actor=ACTOR)
    assert empty.value.details == {"field": "api_key"}
    with pytest.raises(Invalid) as spaced:
        services.cliniko_connect(organization=clinic, api_key="abc def-au2", actor=ACTOR)
    assert spaced.value.details == {"field": "api_key"}
    with pytest.raises(Invalid) as bad_url:
        services.cliniko_connect(organization=clinic, api_key=new_key(), base_url="ftp://x.test/v1", actor=ACTOR)
    assert bad_url.value.details == {"field": "base_url"}
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    with pytest.raises(Invalid) as plain_http:
        services.cliniko_connect(organization=clinic, api_key=new_key(), base_url=stub.base_url, actor=ACTOR)
    assert plain_http.value.details == {"field": "base_url"}
    assert not ClinikoConnection.objects.exists()

    key = new_key("uk1")
    connection = services.cliniko_connect(organization=clinic, api_key=f"  {key}\n", actor=ACTOR)
    assert (connection.shard, connection.base_url) == ("uk1", "")
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM sync_clinikoconnection WHERE organization_id = %s", [clinic.pk])
        stored = cursor.fetchone()[0]
    assert key not in stored  # encrypted at rest
    assert ClinikoConnection.objects.get(organization=clinic).api_key == key

    ClinikoConnection.objects.filter(organization=clinic).update(
        last_successful_sync_started_at=utc_now(), credentials_valid=True, business_country="AU"
    )
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    second = new_key()
    connection = services.cliniko_connect(organization=clinic, api_key=second, base_url=stub.base_url, actor=ACTOR)
    connection.refresh_from_db()
    assert connection.api_key == second and connection.base_url == stub.base_url and connection.shard == ""
    assert connection.last_successful_sync_started_at is None  # another key may be another account: full next
    assert connection.credentials_valid is None and connection.business_country == ""
    events = list(AuditEvent.objects.filter(action="sync.cliniko_connected").order_by("id"))
    assert [event.metadata["reconnected"] for event in events] == [False, True]
    assert all(key not in str(event.metadata) and second not in str(event.metadata) for event in events)


def test_test_connection_records_the_result_and_never_raises_for_cliniko(clinic, stub):
    with pytest.raises(Conflict) as missing:
        services.cliniko_test_connection(organization=clinic)
    assert missing.value.code == "CLINIKO_NOT_CONNECTED"

    key = connect(clinic, stub)
    stub.generate(key, patients=7, appointments=0)
    engine = Engine()
    result = services.cliniko_test_connection(organization=clinic, client=engine.client(clinic))
    assert result["ok"] is True and result["total_patients"] == 7
    connection = ClinikoConnection.objects.get(organization=clinic)
    assert connection.credentials_valid is True and connection.credentials_checked_at is not None

    stub.fail_path("/v1/patients", 503)
    result = services.cliniko_test_connection(organization=clinic, client=engine.client(clinic))
    assert result["ok"] is False and result["code"] == "cliniko_http_503"
    assert ClinikoConnection.objects.get(organization=clinic).credentials_valid is True  # an outage says nothing
    stub.clear_failures()

    connect(clinic, stub, key=new_key())  # a key the stand-in does not know: 401
    result = services.cliniko_test_connection(organization=clinic, client=Engine().client(clinic))
    assert result == {"ok": False, "code": "cliniko_http_401", "checked_at": result["checked_at"]}
    assert ClinikoConnection.objects.get(organization=clinic).credentials_valid is False


# --- Starting runs -------------------------------------------------------------------------------


def test_start_validates_and_a_second_start_returns_the_running_run(clinic, stub, enqueued):
    with pytest.raises(Conflict) as missing:
        services.sync_run_start(organization=clinic, mode="comprehensive", trigger="api", actor=ACTOR)
    assert missing.value.code == "CLINIKO_NOT_CONNECTED"
    connect(clinic, stub)
    with pytest.raises(Invalid) as mode:
        services.sync_run_start(organization=clinic, mode="everything", trigger="api", actor=ACTOR)
    assert mode.value.details == {"field": "mode"}
    with pytest.raises(Invalid) as trigger:
        services.sync_run_start(organization=clinic, mode="basic", trigger="cron", actor=ACTOR)
    assert trigger.value.details == {"field": "trigger"}

    run, started = services.sync_run_start(organization=clinic, mode="basic", trigger="api", actor=ACTOR)
    again, started_again = services.sync_run_start(
        organization=clinic, mode="comprehensive", trigger="api", actor=ACTOR
    )
    assert (started, started_again) == (True, False)
    assert again.pk == run.pk and SyncRun.objects.filter(organization=clinic).count() == 1
    # The business country is unknown yet: basic runs read it first (phones are read in that country).
    assert run.cursor["steps"] == ["business", "patients", "appointments"] and run.total_steps == 3
    assert run.incremental is False and run.status == "pending" and run.public_id.startswith("sync_")
    assert AuditEvent.objects.filter(action="sync.run_started", subject_id=run.public_id).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_make_one_run(require_postgres, enqueued):
    clinic = accounts_services.organization_create(name="Clinic A", actor=ACTOR)
    services.cliniko_connect(
        organization=clinic, api_key=new_key(), base_url="https://cliniko.example.test/v1", actor=ACTOR
    )
    barrier = threading.Barrier(6)
    outcomes: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def trigger():
        try:
            barrier.wait(timeout=10)
            run, started = services.sync_run_start(
                organization=clinic, mode="comprehensive", trigger="api", actor=ACTOR
            )
            outcomes.append((run.pk, started))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=trigger) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sum(started for _, started in outcomes) == 1
    assert len({run_id for run_id, _ in outcomes}) == 1
    assert SyncRun.objects.filter(organization=clinic).count() == 1
    assert len(enqueued) == 1  # one first chunk, after the one commit that made the run


@pytest.mark.django_db(transaction=True)
def test_two_workers_on_one_chunk_work_it_once(require_postgres, stub):
    clinic = accounts_services.organization_create(name="Clinic A", actor=ACTOR)
    key = connect(clinic, stub)
    stub.generate(key, patients=40, appointments=30)
    stub.latency = 0.02
    run = start(clinic, "basic")
    barrier = threading.Barrier(2)
    results: list[dict] = []
    errors: list[BaseException] = []

    def worker():
        try:
            client = Engine().client(clinic)
            barrier.wait(timeout=10)
            results.append(services.sync_run_chunk(run_id=run.pk, seq=0, client=client))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(result["result"] == "skipped" for result in results) == [False, True]  # one worked it
    run = Engine().drive(run)
    assert run.status == "completed" and (run.patients_processed, run.appointments_processed) == (40, 30)
    assert len(stub.requests_to("/v1/patients", key)) == 1  # the pages were read once


# --- Full and incremental runs -------------------------------------------------------------------


def test_full_sync_imports_every_record_in_chunks(clinic, stub, enqueued):
    key = connect(clinic, stub)
    stub.generate(key, patients=251, appointments=230)
    stub.latency = 0.05  # requests overlap when they are asked at once
    engine = Engine()
    run = engine.drive(start(clinic))

    assert run.status == "completed" and run.errors == [] and run.incremental is False
    assert Patient.objects.filter(organization=clinic).count() == 251
    assert Appointment.objects.filter(organization=clinic).count() == 230
    assert ClinikoAppointmentType.objects.filter(organization=clinic).count() == len(
        stub.account(key).appointment_types
    )
    assert ClinikoPractitioner.objects.filter(organization=clinic).count() == len(stub.account(key).practitioners)
    assert (run.patients_processed, run.appointments_processed) == (251, 230)
    assert (run.records_total, run.records_processed, run.records_success, run.records_failed) == (481, 481, 481, 0)
    assert (run.completed_steps, run.total_steps, run.current_step) == (5, 5, "Completed")
    assert services.run_progress(run)["progress_percentage"] == 100.0
    connection = ClinikoConnection.objects.get(organization=clinic)
    assert connection.business_country == "AU"
    assert connection.last_successful_sync_started_at == run.started_at
    # Patients read in the business's country: Australian mobiles become +61 numbers.
    assert Patient.objects.filter(organization=clinic, phone__isnull=False).first().phone.startswith("+61")
    # Chunked: several chunks, each queued after the previous one with the next sequence number.
    assert sum(1 for result in engine.results if result["result"] == "continued") >= 2
    assert [seq for _, seq, _ in enqueued] == list(range(len(enqueued)))
    # Concurrent pages: the 3 pages of patients after the first were asked at once.
    assert stub.max_in_flight >= 2
    assert AuditEvent.objects.filter(action="sync.run_finished", subject_id=run.public_id).count() == 1


def test_incremental_after_changes_ends_like_a_full_sync(clinic, other_clinic, stub):
    key = connect(clinic, stub)
    ids = stub.generate(key, patients=120, appointments=150)
    first = sync(clinic)
    assert first.status == "completed"

    edited, archived, deleted = ids["patients"][0], ids["patients"][1], ids["patients"][2]
    stub.edit_patient(key, edited, first_name="Renamed", mobile="0499 000 111")
    stub.archive_patient(key, archived)
    stub.delete_patient(key, deleted)
    live = [
        appointment_id
        for appointment_id in ids["appointments"]
        if not stub.account(key).appointments[appointment_id].get("cancelled_at")
    ]
    stub.cancel_appointment(key, live[0])
    stub.delete_appointment(key, live[1])
    stub.edit_appointment(key, live[2], starts_at=utc_now() + timedelta(days=3, hours=1))
    added = stub.add_patient(key, first_name="Newly", last_name="Added", mobile="0411 222 333")
    added_appointment = stub.add_appointment(key, patient_id=added["id"], starts_at=utc_now() + timedelta(days=2))
    stub.clear_requests()

    second = sync(clinic)
    assert second.errors == [] and second.cursor.get("incomplete") == []
    assert second.status == "completed" and second.incremental is True
    assert second.updated_since == first.started_at - timedelta(minutes=10)
    filters = [value for request in stub.requests for value in request.params("q[]")]
    assert filters and all(value.startswith("updated_at:>=") for value in filters)
    assert second.patients_processed < 10 and second.appointments_processed < 10  # only what changed
    assert len(stub.requests) <= 15  # business, lookups, one page per collection

    patient = Patient.objects.get(organization=clinic, external_id=edited)
    assert patient.name.startswith("Renamed") and patient.phone == "+61499000111"
    assert Patient.objects.get(organization=clinic, external_id=archived).archived is True
    assert Patient.objects.get(organization=clinic, external_id=deleted).archived is True
    assert Patient.objects.get(organization=clinic, external_id=added["id"]).name == "Newly Added"
    assert Appointment.objects.get(organization=clinic, external_id=live[0]).status == "canceled"
    assert not Appointment.objects.filter(organization=clinic, external_id=live[1]).exists()
    assert Appointment.objects.filter(organization=clinic, external_id=added_appointment["id"]).exists()

    # A full run over the same organization now changes nothing: incremental and full end in the same state.
    after_incremental = snapshot(clinic)
    refull = sync(clinic, full=True)
    assert refull.incremental is False and refull.status == "completed"
    assert snapshot(clinic) == after_incremental

    # Another organization connected to the same Cliniko account, synced once in full, ends the same, except
    # for the patient deleted in Cliniko: we had it (now archived), a first full run never creates it.
    connect(other_clinic, stub, key=key)
    full = sync(other_clinic)
    assert full.incremental is False and full.status == "completed"
    expected = snapshot(clinic)
    assert expected["patients"].pop(deleted)[3] is True
    expected["appointments"] = {
        apt_id: value for apt_id, value in expected["appointments"].items() if value[0] != deleted
    }
    assert snapshot(other_clinic) == expected


def test_a_patient_deleted_in_cliniko_is_archived_by_the_next_run(clinic, stub):
    key = connect(clinic, stub)
    ids = stub.generate(key, patients=5, appointments=0)
    assert sync(clinic).status == "completed"
    stub.delete_patient(key, ids["patients"][0])
    run = sync(clinic)
    assert Patient.objects.get(organization=clinic, external_id=ids["patients"][0]).archived is True
    assert run.status == "completed", run.errors


def test_a_patients_only_run_never_moves_the_watermark(clinic, stub):
    key = connect(clinic, stub)
    stub.generate(key, patients=5, appointments=5)
    run = sync(clinic, "patients-only")
    assert run.status == "completed" and run.cursor["steps"] == ["business", "patients"]
    assert Appointment.objects.filter(organization=clinic).count() == 0
    assert ClinikoConnection.objects.get(organization=clinic).last_successful_sync_started_at is None
    basic = sync(clinic, "basic")
    assert basic.incremental is False and basic.cursor["steps"] == ["patients", "appointments"]  # country known
    assert Appointment.objects.filter(organization=clinic).count() == 5


# --- Rate limits, failures ----------------------------------------------------------------------


def test_429_mid_run_is_waited_out_and_the_run_completes_with_every_record(clinic, db):
    clock = FakeClock()
    with ClinikoStub(rate_limit=4, rate_window=60, clock=clock.time) as stub:
        key = connect(clinic, stub)
        stub.generate(key, patients=230, appointments=180)
        run = Engine(clock).drive(start(clinic))
        rate_limited = [request for request in stub.requests if request.status == 429]
    assert rate_limited, "the stand-in never answered 429: the test proves nothing"
    assert run.status == "completed" and run.records_failed == 0
    assert Patient.objects.filter(organization=clinic).count() == 230
    assert Appointment.objects.filter(organization=clinic).count() == 180
    assert max(clock.sleeps) <= services.ENGINE_RATE_LIMIT_WAIT_SECONDS  # no chunk sleeps long


def test_our_budget_running_out_defers_the_chunk_instead_of_sleeping(clinic, stub):
    key = connect(clinic, stub)
    stub.generate(key, patients=150, appointments=10)
    engine = Engine(budget_limit=3)
    run = engine.drive(start(clinic))
    assert run.status == "completed"
    deferred = [result for result in engine.results if result["result"] == "deferred"]
    assert deferred and all(result["countdown"] > 0 for result in deferred)
    assert not [request for request in stub.requests if request.status == 429]  # we kept under the limit
    assert Patient.objects.filter(organization=clinic).count() == 150


def test_a_500_that_persists_fails_the_run_and_keeps_the_last_good_data(clinic, stub):
    key = connect(clinic, stub)
    ids = stub.generate(key, patients=60, appointments=80)
    good = sync(clinic)
    before = snapshot(clinic)
    stub.edit_patient(key, ids["patients"][0], first_name="Changed")
    stub.fail_path("/v1/individual_appointments", 500)

    failed = sync(clinic)
    assert failed.status == "failed"
    assert [error["code"] for error in failed.errors] == ["cliniko_http_500"]
    assert failed.errors[0]["step"] == "appointments"
    connection = ClinikoConnection.objects.get(organization=clinic)
    assert connection.last_successful_sync_started_at == good.started_at  # the next run reads the changes again
    after = snapshot(clinic)
    assert after["appointments"] == before["appointments"]  # nothing deleted because a page failed
    assert set(after["patients"]) == set(before["patients"])
    assert len(stub.requests_to("/v1/individual_appointments", key)) > 1  # the client retried before giving up

    stub.clear_failures()
    retried = sync(clinic)
    assert retried.status == "completed" and retried.incremental is True
    assert retried.updated_since == good.started_at - timedelta(minutes=10)


def test_a_refused_key_fails_the_run_and_marks_the_credentials(clinic, stub):
    connect(clinic, stub, key=new_key())  # unknown to the stand-in
    run = sync(clinic)
    assert run.status == "failed" and run.errors[0]["code"] == "cliniko_http_401"
    assert ClinikoConnection.objects.get(organization=clinic).credentials_valid is False


def test_records_that_fail_to_import_make_the_run_partial(clinic, stub, monkeypatch):
    key = connect(clinic, stub)
    stub.generate(key, patients=20, appointments=30)
    original = importing.import_appointments

    def one_failure(**kwargs):
        counts = original(**kwargs)
        counts.failed += 1
        return counts

    monkeypatch.setattr(importing, "import_appointments", one_failure)
    run = sync(clinic)
    assert run.status == "partial" and run.records_failed >= 1
    assert "records_failed" in [error["code"] for error in run.errors]
    assert ClinikoConnection.objects.get(organization=clinic).last_successful_sync_started_at is None


def test_two_organizations_with_the_same_cliniko_ids_never_overwrite_each_other(clinic, other_clinic, stub):
    key_a = connect(clinic, stub)
    key_b = connect(other_clinic, stub)
    ids_a = stub.generate(key_a, patients=30, appointments=40, seed=3)
    ids_b = stub.generate(key_b, patients=30, appointments=40, seed=3)
    assert ids_a == ids_b  # the same Cliniko ids in both accounts
    stub.edit_patient(key_b, ids_b["patients"][0], first_name="Bonly")
    sync(clinic)
    sync(other_clinic)
    patient_a = Patient.objects.get(organization=clinic, external_id=ids_a["patients"][0])
    patient_b = Patient.objects.get(organization=other_clinic, external_id=ids_b["patients"][0])
    assert patient_a.pk != patient_b.pk
    assert not patient_a.name.startswith("Bonly") and patient_b.name.startswith("Bonly")
    assert Patient.objects.filter(organization=clinic).count() == 30
    assert Patient.objects.filter(organization=other_clinic).count() == 30
    assert Appointment.objects.filter(organization=clinic).count() == 40
    assert Appointment.objects.filter(organization=other_clinic).count() == 40


# --- Killed workers, the sweeper, the schedule ---------------------------------------------------


def test_a_worker_killed_mid_chunk_is_resumed_after_its_lease_expires(
    clinic, stub, monkeypatch, enqueued, django_capture_on_commit_callbacks
):
    key = connect(clinic, stub)
    stub.generate(key, patients=130, appointments=20)
    engine = Engine()
    run = start(clinic, "basic")
    original = importing.import_patients
    killed = {"done": False}

    def dies_once(**kwargs):
        if not killed["done"]:
            killed["done"] = True
            raise SystemExit("worker killed")  # the process dies mid-chunk: nothing after this runs
        return original(**kwargs)

    monkeypatch.setattr(importing, "import_patients", dies_once)
    results = []
    with pytest.raises(SystemExit):
        for _ in range(10):
            results.append(engine.chunk(run))
    run.refresh_from_db()
    assert run.status == "running" and run.cursor["token"]  # the dead worker's lease
    stuck_seq = run.cursor["seq"]

    assert services.sync_runs_resume_stalled() == {"resumed": 0, "failed": 0}  # the lease may still be alive
    assert engine.chunk(run, seq=stuck_seq)["reason"] == "leased"

    SyncRun.objects.filter(pk=run.pk).update(lease_until=utc_now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.sync_runs_resume_stalled() == {"resumed": 1, "failed": 0}
    run.refresh_from_db()
    assert run.cursor["token"] is None and run.cursor["seq"] == stuck_seq + 1
    assert enqueued[-1] == (run.pk, stuck_seq + 1, 0)
    assert engine.chunk(run, seq=stuck_seq)["reason"] == "duplicate"  # the old message, delivered late

    run = engine.drive(run)
    assert run.status == "completed"
    assert Patient.objects.filter(organization=clinic).count() == 130
    assert Appointment.objects.filter(organization=clinic).count() == 20


def test_a_chunk_that_keeps_crashing_fails_the_run(clinic, stub, monkeypatch):
    key = connect(clinic, stub)
    stub.generate(key, patients=3, appointments=0)
    ClinikoConnection.objects.filter(organization=clinic).update(business_country="AU")  # steps: patients only
    run = start(clinic, "patients-only")
    monkeypatch.setattr(importing, "import_patients", lambda **kwargs: 1 / 0)
    engine = Engine()
    crashes = 0
    for _ in range(services.MAX_CHUNK_ATTEMPTS + 3):
        try:
            result = engine.chunk(run)
        except ZeroDivisionError:
            crashes += 1
            SyncRun.objects.filter(pk=run.pk).update(lease_until=utc_now() - timedelta(seconds=1))
            services.sync_runs_resume_stalled()
            continue
        if result["result"] == "finished":
            break
    assert crashes == services.MAX_CHUNK_ATTEMPTS  # then the run is failed instead of crashing forever
    run.refresh_from_db()
    assert run.status == "failed" and run.errors[-1]["code"] == "chunk_failed"


def test_the_sweeper_fails_runs_stalled_longer_than_the_limit(clinic, stub, settings):
    connect(clinic, stub)
    run = start(clinic)
    now = utc_now()
    assert services.sync_runs_resume_stalled(now=now) == {"resumed": 0, "failed": 0}  # queued, within grace
    settings.CLINIKO_RUN_MAX_HOURS = 2
    later = now + timedelta(hours=2, minutes=1)
    assert services.sync_runs_resume_stalled(now=later) == {"resumed": 0, "failed": 1}
    run.refresh_from_db()
    assert run.status == "failed" and run.errors[-1]["code"] == "stalled" and run.completed_at == later
    # The organization can sync again.
    assert services.sync_run_start(organization=clinic, mode="basic", trigger="api", actor=ACTOR)[1] is True


def test_a_lost_first_chunk_is_queued_again_after_the_grace(clinic, stub, enqueued):
    connect(clinic, stub)
    run = start(clinic)
    later = utc_now() + timedelta(minutes=6)
    assert services.sync_runs_resume_stalled(now=later) == {"resumed": 1, "failed": 0}
    run.refresh_from_db()
    assert run.cursor["seq"] == 1 and run.lease_until > later
    assert services.sync_runs_resume_stalled(now=later) == {"resumed": 0, "failed": 0}  # not twice


def test_the_hourly_schedule_starts_one_comprehensive_run_per_enabled_connection(clinic, other_clinic, stub, db):
    third = accounts_services.organization_create(name="No Cliniko", actor=ACTOR)
    connect(clinic, stub)
    connect(other_clinic, stub)
    ClinikoConnection.objects.filter(organization=other_clinic).update(sync_enabled=False)
    assert services.sync_schedule_hourly() == {"started": 1, "running": 0, "errors": 0}
    run = SyncRun.objects.get()
    assert (run.organization_id, run.mode, run.trigger) == (clinic.pk, "comprehensive", "schedule")
    assert services.sync_schedule_hourly() == {"started": 0, "running": 1, "errors": 0}
    assert not SyncRun.objects.filter(organization__in=[other_clinic, third]).exists()


def test_progress_moves_between_chunks(clinic, stub):
    key = connect(clinic, stub)
    stub.generate(key, patients=600, appointments=0)
    engine = Engine()
    run = start(clinic, "patients-only")
    seen = []
    for _ in range(50):
        result = engine.chunk(run)
        run.refresh_from_db()
        seen.append(services.run_progress(run)["progress_percentage"])
        if result["result"] == "finished":
            break
    assert seen == sorted(seen) and seen[-1] == 100.0
    assert any(0 < value < 100 for value in seen)
    assert run.status == "completed" and run.records_total == 600


@pytest.mark.django_db(transaction=True)
def test_eager_celery_runs_the_chunks_one_after_another_never_nested(stub, settings, monkeypatch):
    """With CELERY_TASK_ALWAYS_EAGER (no worker), each chunk queues the next from its commit: run there and
    then, chunks would nest one level per chunk (a large account would hit Python's recursion limit)."""
    monkeypatch.setattr(services, "_enqueue_chunk", REAL_ENQUEUE)
    settings.CELERY_TASK_ALWAYS_EAGER = True
    clinic = accounts_services.organization_create(name="Clinic A", actor=ACTOR)
    key = connect(clinic, stub)
    stub.generate(key, patients=320, appointments=40)
    depth = {"now": 0, "max": 0}
    original = services.sync_run_chunk

    def counted(**kwargs):
        depth["now"] += 1
        depth["max"] = max(depth["max"], depth["now"])
        try:
            return original(**kwargs)
        finally:
            depth["now"] -= 1

    monkeypatch.setattr(services, "sync_run_chunk", counted)
    run, _ = services.sync_run_start(organization=clinic, mode="basic", trigger="api", actor=ACTOR)  # autocommit
    run.refresh_from_db()
    assert run.status == "completed"
    assert run.cursor["seq"] >= 2  # several chunks ran
    assert depth["max"] == 1
    assert Patient.objects.filter(organization=clinic).count() == 320
