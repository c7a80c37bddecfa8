"""sync.clients.ClinikoClient against the Cliniko stand-in (tests/cliniko_stub.py) on 127.0.0.1.

Waits go through an injected clock and sleeper (FakeClock) unless a test says it uses real time.
"""

from __future__ import annotations

import base64
import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from core.request_budget import BudgetExhausted, RequestBudget
from sync.clients import (
    ClinikoAuthError,
    ClinikoClient,
    ClinikoPermanentError,
    ClinikoTransientError,
    base_url_for_key,
    shard_from_key,
)
from tests.cliniko_stub import ClinikoStub
from tests.servers import LocalServer, Reply

USER_AGENT = "Routiq tests (dev@example.com)"


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
def cliniko_settings(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    settings.CLINIKO_USER_AGENT = USER_AGENT


@pytest.fixture
def stub():
    with ClinikoStub() as server:
        yield server


def new_key(shard: str = "au2") -> str:
    return f"MS0x{uuid.uuid4().hex}-{shard}"


def client_for(stub: ClinikoStub, key: str, clock: FakeClock | None = None, **kwargs) -> ClinikoClient:
    if clock is not None:
        kwargs.setdefault("clock", clock.time)
        kwargs.setdefault("sleep", clock.sleep)
    return ClinikoClient(api_key=key, base_url=stub.base_url, **kwargs)


# --- Base URL, auth, user agent ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "shard"),
    [
        ("MS0xLWl4SzYYYYdtR3V2HNOTAREALKEYwvNHdeW0pd-au2", "au2"),
        ("MS0xLWl4SzYYYYdtR3V2HNOTAREALKEYwvNHdeW0pd", "au1"),  # no suffix: Cliniko's old keys live in au1
        ("MS0xLWl4-UK1", "uk1"),
        ("MS0x-abc-ca1", "ca1"),
        ("MS0x-au4", "au4"),
        ("MS0x-zz999", "au1"),  # not a shard: never put arbitrary text into the host name
        ("MS0x-a.evil", "au1"),
        ("MS0x-", "au1"),
    ],
)
def test_shard_from_the_key_suffix(key, shard):
    assert shard_from_key(key) == shard
    assert base_url_for_key(key) == f"https://api.{shard}.cliniko.com/v1"
    assert ClinikoClient(api_key=key).base_url == f"https://api.{shard}.cliniko.com/v1"


def test_explicit_base_url_must_be_https_unless_the_test_switch_allows_http(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    with pytest.raises(ClinikoPermanentError) as refused:
        ClinikoClient(api_key=new_key(), base_url="http://cliniko.example.test/v1")
    assert refused.value.code == "cliniko_base_url_not_https"
    assert ClinikoClient(api_key=new_key(), base_url="https://cliniko.example.test/v1/").base_url == (
        "https://cliniko.example.test/v1"
    )
    for bad in ("https://user:pw@cliniko.example.test/v1", "https://cliniko.example.test/v1?x=1", "ftp://x/v1"):
        with pytest.raises(ClinikoPermanentError):
            ClinikoClient(api_key=new_key(), base_url=bad)


def test_loopback_base_url_is_refused_without_the_switch(settings, stub):
    key = stub.add_account(new_key())
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    with pytest.raises(ClinikoPermanentError):  # http refused before any connection
        ClinikoClient(api_key=key, base_url=stub.base_url)
    assert ClinikoClient(api_key=key, base_url=stub.server.url("/v1").replace("http:", "https:"))
    assert stub.requests == []


def test_basic_auth_with_the_key_and_the_configured_user_agent(stub):
    key = stub.add_account(new_key())
    stub.add_patient(key)
    patients = client_for(stub, key).list_patients()
    assert len(patients) == 1
    received = stub.server.requests[-1]
    scheme, _, token = received.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(token).decode() == f"{key}:"  # key as user name, empty password
    assert received.headers["User-Agent"] == USER_AGENT
    assert received.headers["Accept"] == "application/json"


def test_user_agent_defaults_to_app_name_and_contact(settings, stub):
    settings.CLINIKO_USER_AGENT = ""
    settings.CLINIKO_APP_NAME = "Routiq"
    settings.CLINIKO_CONTACT_EMAIL = "ops@clinic.example"
    key = stub.add_account(new_key())
    client_for(stub, key).list_patients()
    assert stub.requests[-1].user_agent == "Routiq (ops@clinic.example)"
    assert stub.requests[-1].status == 200


def test_a_refused_key_is_an_auth_error_without_retries(stub):
    clock = FakeClock()
    with pytest.raises(ClinikoAuthError) as refused:
        client_for(stub, "not-a-known-key", clock).list_patients()
    assert refused.value.code == "cliniko_http_401" and refused.value.status == 401
    assert [r.status for r in stub.requests] == [401]
    assert clock.sleeps == []


def test_check_connection(stub):
    key = stub.add_account(new_key())
    stub.generate(key, patients=7, appointments=0)
    check = client_for(stub, key).check_connection()
    assert check.ok and check.total_patients == 7 and check.shard is None
    assert stub.requests[-1].params("per_page") == ["1"]
    with pytest.raises(ClinikoAuthError):
        client_for(stub, new_key()).check_connection()


# --- Paging --------------------------------------------------------------------------------------


def test_paging_reads_every_page_once_with_100_per_page(stub):
    key = stub.add_account(new_key())
    ids = stub.generate(key, patients=250, appointments=0)["patients"]
    client = client_for(stub, key, concurrency=1)
    patients = client.list_patients()
    assert sorted(p.id for p in patients) == sorted(ids)
    assert patients.complete and patients.total_entries == 250 and patients.requests == 3
    pages = stub.requests_to("/v1/patients")
    assert [r.params("per_page") for r in pages] == [["100"]] * 3
    assert sorted(r.params("page") for r in pages) == [[], ["2"], ["3"]]
    assert all(isinstance(p.id, str) and p.id.isdigit() for p in patients)


def test_links_next_is_followed_when_the_total_is_missing():
    pages = {
        "1": {"patients": [{"id": "1"}, {"id": "2"}], "links": {"next": "/v1/patients?per_page=100&page=2"}},
        "2": {"patients": [{"id": "3"}], "links": {}},
    }

    def handler(request):
        page = "2" if "page=2" in request.path else "1"
        body = dict(pages[page])
        if body["links"].get("next"):
            body["links"] = {"next": server.url(body["links"]["next"])}
        import json

        return Reply(200, {"Content-Type": "application/json"}, json.dumps(body))

    with LocalServer(handler) as server:
        client = ClinikoClient(api_key=new_key(), base_url=server.url("/v1"))
        assert [p.id for p in client.list_patients()] == ["1", "2", "3"]
        assert len(server.requests) == 2


def test_a_next_link_to_another_origin_is_refused_and_never_called():
    def handler(request):
        return Reply(
            200,
            {"Content-Type": "application/json"},
            '{"patients": [], "total_entries": 500, "links": {"next": "http://127.0.0.2:9/v1/patients?page=2"}}',
        )

    with LocalServer(handler) as server:
        with pytest.raises(ClinikoPermanentError) as refused:
            ClinikoClient(api_key=new_key(), base_url=server.url("/v1")).list_patients()
    assert refused.value.code == "cliniko_url_other_origin"
    assert len(server.requests) == 1


def test_concurrent_fetch_gets_every_page_exactly_once(stub):
    stub.latency = 0.15
    key = stub.add_account(new_key())
    ids = stub.generate(key, patients=1000, appointments=0)["patients"]
    client = client_for(stub, key, concurrency=4)
    patients = client.list_patients()
    assert len(patients) == 1000 and {p.id for p in patients} == set(ids)
    pages = [r.params("page") for r in stub.requests_to("/v1/patients")]
    assert sorted(pages) == sorted([[]] + [[str(n)] for n in range(2, 11)])  # page 1 (no param) + 2..10, once each
    assert stub.max_in_flight >= 2  # pages really were in flight together
    assert client.requests_made == 10


def test_fetch_pages_in_order_and_follows_a_trailing_next(stub):
    key = stub.add_account(new_key())
    stub.generate(key, patients=120, appointments=0)
    client = client_for(stub, key)
    first = client.url("patients")
    # Cliniko counted 120 when the run started; 30 more arrive: the last page's next link is followed.
    stub.generate(key, patients=30, appointments=0, seed=99)
    pages = client.fetch_pages(first, 120, "patients")
    assert [len(page.records) for page in pages] == [100, 50]
    ids = [record["id"] for page in pages for record in page.records]
    assert len(set(ids)) == 150


def test_incremental_filter_is_sent_and_applied():
    moment = [datetime(2026, 5, 1, 12, tzinfo=UTC)]
    with ClinikoStub(now=lambda: moment[0]) as stub:
        key = stub.add_account(new_key())
        ids = stub.generate(key, patients=20, appointments=0, reference=moment[0])["patients"]
        since = moment[0]  # generated history ends an hour before: nothing is that recent yet
        stub.edit_patient(key, ids[3], first_name="Edited")  # at `since` exactly
        moment[0] += timedelta(seconds=5)
        stub.edit_patient(key, ids[7], mobile="0499 000 111")
        client = client_for(stub, key)
        changed = client.list_patients(updated_since=since)
        assert sorted(p.id for p in changed) == sorted([ids[3], ids[7]])
        assert stub.requests_to("/v1/patients")[-1].params("q[]") == ["updated_at:>=2026-05-01T12:00:00Z"]
        strictly = client.list_patients(updated_since=since, strictly_after=True)
        assert stub.requests_to("/v1/patients")[-1].params("q[]") == ["updated_at:>2026-05-01T12:00:00Z"]
        assert [p.id for p in strictly] == [ids[7]]
        naive = client.list_patients(updated_since=since.replace(tzinfo=None) + timedelta(seconds=1))
        assert [p.id for p in naive] == [ids[7]]  # a naive instant is read as UTC
        assert len(client.list_patients()) == 20


def test_archived_cancelled_and_deleted_only_when_asked(stub):
    key = stub.add_account(new_key())
    stub.generate(key, patients=0, appointments=0)
    kept = stub.add_patient(key, first_name="Kept")
    archived = stub.add_patient(key, first_name="Archived")
    deleted = stub.add_patient(key, first_name="Deleted")
    start = datetime(2026, 6, 1, 9, tzinfo=UTC)
    live = stub.add_appointment(key, patient_id=kept["id"], starts_at=start)
    cancelled = stub.add_appointment(key, patient_id=kept["id"], starts_at=start + timedelta(days=1))
    gone = stub.add_appointment(key, patient_id=kept["id"], starts_at=start + timedelta(days=2))
    stub.archive_patient(key, archived["id"])
    stub.delete_patient(key, deleted["id"])
    stub.cancel_appointment(key, cancelled["id"])
    stub.delete_appointment(key, gone["id"])
    client = client_for(stub, key)

    assert [p.id for p in client.list_patients()] == [kept["id"]]
    everyone = {p.id: p for p in client.list_patients(include_archived=True, include_deleted=True)}
    assert set(everyone) == {kept["id"], archived["id"], deleted["id"]}
    assert everyone[archived["id"]].archived_at is not None and everyone[kept["id"]].archived_at is None
    assert everyone[deleted["id"]].deleted_at is not None  # from /patients/deleted (id taken from its link)

    assert [a.id for a in client.list_appointments()] == [live["id"]]
    every = {a.id: a for a in client.list_appointments(include_cancelled=True, include_deleted=True)}
    assert set(every) == {live["id"], cancelled["id"], gone["id"]}
    assert every[cancelled["id"]].cancelled_at is not None and every[live["id"]].cancelled_at is None
    assert every[gone["id"]].deleted_at is not None


def test_records_parse_to_string_ids_links_and_utc_instants(stub):
    key = stub.add_account(new_key())
    stub.generate(key, patients=0, appointments=0)
    patient = stub.add_patient(key, mobile="0412 345 678", other_phones=[("Home", "02 9999 0000")], archived_at="")
    start = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
    appointment = stub.add_appointment(key, patient_id=patient["id"], starts_at=start, minutes=45, notes="Knee")
    client = client_for(stub, key)
    [parsed] = client.list_patients()
    assert parsed.id == patient["id"] and parsed.mobile == "0412 345 678" and parsed.archived_at is None
    assert parsed.date_of_birth.isoformat() == "1985-04-12"
    assert "Olivia" not in repr(parsed) and "0412" not in repr(parsed)
    [apt] = client.list_appointments()
    assert apt.id == appointment["id"] and apt.patient_id == patient["id"]
    assert apt.practitioner_id in stub.account(key).practitioners
    assert apt.appointment_type_id in stub.account(key).appointment_types
    assert apt.starts_at == start and apt.ends_at == start + timedelta(minutes=45) and apt.notes == "Knee"
    types = client.list_appointment_types()
    assert {t.name for t in types} >= {"Initial Consultation"} and all(t.duration_in_minutes for t in types)
    practitioners = client.list_practitioners()
    assert {p.label for p in practitioners} == {"Sarah Mitchell", "David Chen", "Emma Robinson"}
    [business] = client.list_businesses()
    assert business.country_code == "AU" and business.country == "Australia"


def test_two_accounts_with_the_same_ids_stay_apart(stub):
    first, second = stub.add_account(new_key()), stub.add_account(new_key("uk1"))
    ids_first = stub.generate(first, patients=5, appointments=5)["patients"]
    ids_second = stub.generate(second, patients=5, appointments=5)["patients"]
    assert ids_first == ids_second  # Cliniko ids are per account: the same numbers can exist twice
    stub.edit_patient(second, ids_second[0], first_name="OnlyInSecond")
    seen_first = {p.id: p for p in client_for(stub, first).list_patients()}
    seen_second = {p.id: p for p in client_for(stub, second).list_patients()}
    assert seen_second[ids_second[0]].first_name == "OnlyInSecond"
    assert seen_first[ids_first[0]].first_name != "OnlyInSecond"


# --- Rate limit, retries, errors -----------------------------------------------------------------


def test_429_waits_until_x_ratelimit_reset_then_retries_the_same_request(stub):
    clock = FakeClock()
    key = stub.add_account(new_key())
    stub.generate(key, patients=3, appointments=0)
    stub.fail_next(429, headers={"X-RateLimit-Reset": str(int(clock.now) + 30)})
    client = client_for(stub, key, clock)
    assert len(client.list_patients()) == 3
    assert [r.status for r in stub.requests_to("/v1/patients")] == [429, 200]
    assert stub.requests[0].query == stub.requests[1].query  # the same request again
    assert sum(clock.sleeps) == pytest.approx(30.0)
    assert client.rate_limited == 1


def test_429_reset_as_an_http_date_and_capped_wait(stub):
    clock = FakeClock()
    key = stub.add_account(new_key())
    reset = datetime.fromtimestamp(clock.now + 12, tz=UTC)
    stub.fail_next(429, headers={"X-RateLimit-Reset": format_datetime(reset, usegmt=True)})
    stub.fail_next(429, headers={"X-RateLimit-Reset": str(int(clock.now) + 100_000)})
    client = client_for(stub, key, clock, max_rate_limit_wait=90)
    client.list_patients()
    assert clock.sleeps[0] == pytest.approx(12.0)
    assert sum(clock.sleeps[1:]) == pytest.approx(90.0)  # a reset far away waits at most the cap


def test_429_without_end_becomes_a_transient_error(stub):
    clock = FakeClock()
    key = stub.add_account(new_key())
    stub.fail_path("/v1/patients", 429, headers={"X-RateLimit-Reset": str(int(clock.now) + 5)})
    with pytest.raises(ClinikoTransientError) as limited:
        client_for(stub, key, clock, max_rate_limit_retries=3).list_patients()
    assert limited.value.code == "cliniko_rate_limited" and limited.value.status == 429
    assert len(stub.requests) == 4


def test_the_real_rate_limit_is_waited_out_and_every_record_arrives(stub):
    """Real time: the stand-in allows 3 requests per second; the client (budget set high) hits its 429s,
    waits for X-RateLimit-Reset and still reads all 5 pages exactly once."""
    stub.rate_limit, stub.rate_window = 3, 1.0
    key = stub.add_account(new_key())
    ids = stub.generate(key, patients=450, appointments=0)["patients"]
    client = client_for(stub, key, requests_per_minute=10_000, concurrency=2)
    patients = client.list_patients()
    assert {p.id for p in patients} == set(ids)
    statuses = [r.status for r in stub.requests_to("/v1/patients")]
    assert statuses.count(429) >= 1 and statuses.count(200) == 5
    ok_pages = [r.params("page") for r in stub.requests_to("/v1/patients") if r.status == 200]
    assert sorted(ok_pages) == sorted([[], ["2"], ["3"], ["4"], ["5"]])


def test_a_persistent_500_raises_a_transient_error_after_bounded_backoff(stub):
    clock = FakeClock()
    key = stub.add_account(new_key())
    stub.fail_path("/v1/individual_appointments", 500)
    client = client_for(stub, key, clock, max_retries=3, backoff_seconds=2.0, backoff_max_seconds=5.0)
    with pytest.raises(ClinikoTransientError) as failed:
        client.list_appointments()
    assert failed.value.code == "cliniko_http_500" and failed.value.status == 500
    assert [r.status for r in stub.requests] == [500] * 4  # 1 + 3 retries, then reported
    assert clock.sleeps == [2.0, 4.0, 5.0]  # doubling, capped


def test_a_passing_5xx_is_retried_and_the_answer_used(stub):
    clock = FakeClock()
    key = stub.add_account(new_key())
    stub.generate(key, patients=2, appointments=0)
    stub.fail_next(503, count=2, headers={"Retry-After": "3"})
    assert len(client_for(stub, key, clock).list_patients()) == 2
    assert [r.status for r in stub.requests] == [503, 503, 200]
    assert clock.sleeps == [3.0, 3.0]  # Retry-After honoured (more than the 1 s, 2 s backoff)


@pytest.mark.parametrize("status", [400, 403, 404, 422])
def test_other_4xx_are_permanent_and_not_retried(stub, status):
    clock = FakeClock()
    key = stub.add_account(new_key())
    stub.fail_next(status)
    with pytest.raises(ClinikoPermanentError) as refused:
        client_for(stub, key, clock).list_patients()
    assert not isinstance(refused.value, ClinikoTransientError)
    assert refused.value.code == f"cliniko_http_{status}"
    assert len(stub.requests) == 1 and clock.sleeps == []


def test_timeouts_are_retried_then_transient():
    server = LocalServer(lambda request: Reply(200, {}, b"{}", delay=1.0))
    clock = FakeClock()
    with server:
        client = ClinikoClient(
            api_key=new_key(),
            base_url=server.url("/v1"),
            timeout=0.2,
            max_retries=1,
            clock=clock.time,
            sleep=clock.sleep,
        )
        with pytest.raises(ClinikoTransientError) as failed:
            client.list_patients()
    assert failed.value.code == "cliniko_timeout"
    assert len(server.requests) == 2


def test_malformed_answers_are_errors(stub):
    def handler(request):
        return Reply(200, {"Content-Type": "application/json"}, '{"patients": "nope"}')

    with LocalServer(handler) as server:
        with pytest.raises(ClinikoPermanentError) as bad:
            ClinikoClient(api_key=new_key(), base_url=server.url("/v1")).list_patients()
    assert bad.value.code == "cliniko_bad_response"


def test_requests_share_the_budget_of_the_key(stub):
    """Two clients of one key (e.g. two workers) share CLINIKO_REQUESTS_PER_MINUTE: the 6th request in
    a minute waits for the first to leave the (61 s) window."""
    clock = FakeClock()
    key = stub.add_account(new_key())
    first = client_for(stub, key, clock, requests_per_minute=5)
    second = client_for(stub, key, clock, requests_per_minute=5)
    for client in (first, second, first, second, first):
        client.check_connection()
    assert clock.sleeps == []
    second.check_connection()
    assert sum(clock.sleeps) == pytest.approx(61.0)  # Cliniko's minute plus the budget's one-second margin
    assert len(stub.requests) == 6 and all(r.status == 200 for r in stub.requests)


def test_budget_timeout_raises_budget_exhausted_without_a_request(stub):
    clock = FakeClock()
    key = stub.add_account(new_key())
    budget = RequestBudget("cliniko-test", limit=1, window_seconds=60, clock=clock.time, sleep=clock.sleep)
    client = client_for(stub, key, clock, budget=budget)
    client.get_json(client.url("patients"), budget_timeout=5)
    with pytest.raises(BudgetExhausted) as exhausted:
        client.get_json(client.url("patients"), budget_timeout=5)
    assert exhausted.value.retry_after == pytest.approx(60.0)
    assert len(stub.requests) == 1


def test_nothing_sensitive_is_logged(stub, caplog):
    clock = FakeClock()
    key = stub.add_account(new_key())
    stub.add_patient(key, first_name="Zebedee", last_name="Quixote", mobile="0477 123 987", email="zq@example.com")
    stub.fail_next(500)
    stub.fail_next(429, headers={"X-RateLimit-Reset": str(int(clock.now) + 1)})
    caplog.set_level(logging.DEBUG)
    client = client_for(stub, key, clock)
    client.list_patients()
    with pytest.raises(ClinikoAuthError) as refused:
        client_for(stub, new_key(), clock).list_patients()
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "patients" in text  # the resource is named...
    for secret in (key, key[:12], "Zebedee", "Quixote", "0477", "zq@example.com", "per_page"):
        assert secret not in text  # ...never the key, the patient or the query
    assert key not in str(refused.value) and key not in repr(client)


def test_merging_copies_keeps_archived_cancelled_deleted_stamps():
    from sync.clients import _merge

    full = {"id": "7", "first_name": "A", "deleted_at": None, "archived_at": None, "updated_at": "2026-01-02T00:00:00Z"}
    deleted_entry = {
        "deleted_at": "2026-01-03T00:00:00Z",
        "links": {"self": "https://api.au1.cliniko.com/v1/patients/7"},
    }
    newer = {"id": "8", "first_name": "New", "updated_at": "2026-02-01T00:00:00Z"}
    older = {
        "id": "8",
        "first_name": "Old",
        "archived_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    merged = {record["id"] if "id" in record else "7": record for record in _merge([full, deleted_entry, newer, older])}
    assert merged["7"]["deleted_at"] == "2026-01-03T00:00:00Z" and merged["7"]["first_name"] == "A"
    assert merged["8"]["first_name"] == "New"  # the later update wins...
    assert merged["8"]["archived_at"] == "2026-01-01T00:00:00Z"  # ...and a state stamp from either copy stays
    assert len(merged) == 2


def test_a_page_failing_for_good_stops_the_concurrent_fetch(stub):
    stub.latency = 0.05
    key = stub.add_account(new_key())
    stub.generate(key, patients=1000, appointments=0)
    client = client_for(stub, key, concurrency=2)
    first = client.get_page(client.url("patients"), "patients")
    assert first.total_entries == 1000 and first.next_url
    stub.fail_path("/v1/patients", 404)
    with pytest.raises(ClinikoPermanentError):
        client.fetch_pages(client.url("patients"), first.total_entries, "patients", start_page=2)
    assert len(stub.requests) <= 1 + 4  # the 9 remaining pages were not all asked for


def test_the_budget_keeps_a_run_under_the_vendor_limit_without_any_429(stub):
    """Real time, scaled down: the stand-in allows 10 requests per second, the client's budget is 10 per
    second plus its margin; 25 requests (three windows) all succeed, none is refused."""
    stub.rate_limit, stub.rate_window = 10, 1.0
    key = stub.add_account(new_key())
    client = client_for(stub, key, requests_per_minute=10, budget_window_seconds=1.1, concurrency=3)
    for _ in range(25):
        client.check_connection()
    assert [r.status for r in stub.requests] == [200] * 25
    assert client.rate_limited == 0
