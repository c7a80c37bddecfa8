"""Mark analytics API through HTTP (spec: mark-assistant-api.md, "Analytics"): exact figures on a small
hand-built clinic in Europe/Madrid (a message at 23:30 UTC is the next local day), every interval and hour
present, percentages adding up to 100, another clinic's data never counted, flat query counts, 400s naming
the parameter, 401/403."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services as accounts_services
from accounts.models import User
from patients import analytics, services
from patients.models import Appointment, ClinicSettings, Conversation, Patient
from tests.patients.conftest import ACTOR

pytestmark = pytest.mark.django_db

CONVERSATIONS = "/api/v1/analytics/conversations"
APPOINTMENTS = "/api/v1/analytics/appointments"
PATIENTS = "/api/v1/analytics/patients"
WEEK = "start_date=2026-03-01&end_date=2026-03-07"  # Sunday to Saturday, Madrid is UTC+1
BOOKED_AT = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)  # the clock appointments are booked with


def _member(username: str, role: str, organization) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username + "-123!")
    accounts_services.membership_set(user=user, organization=organization, role=role, actor=ACTOR)
    return user


def _auth(user: User) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(user)}"}


def _patient(clinic, name: str, language: str, created: datetime) -> Patient:
    return services.patient_create(
        organization=clinic, name=name, preferred_language=language, actor=ACTOR, now=created
    )


def _messages(patient: Patient, first: datetime, count: int, *, sender="patient", every=timedelta(minutes=2)):
    for i in range(count):
        services.message_record(patient=patient, sender=sender, content=f"m{i}", now=first + i * every)


def _appointment(patient, start: datetime, kind: str, *, status=None, reason=None) -> Appointment:
    appointment = services.appointment_create(
        patient=patient, start_time=start, duration=30, appointment_type=kind, actor=ACTOR, now=BOOKED_AT
    )
    if status is not None:
        services.appointment_update(appointment=appointment, status=status, actor=ACTOR, now=BOOKED_AT)
    if reason is not None:
        services.appointment_cancel(appointment=appointment, reason=reason, actor=ACTOR, now=BOOKED_AT)
    return appointment


@pytest.fixture
def http(frozen_ratelimit_clock):
    return Client(raise_request_exception=False)


@pytest.fixture
def owner(clinic):
    return _member("owner", "owner", clinic)


@pytest.fixture
def data(clinic, other_clinic):
    """The clinic (Europe/Madrid, explicitly) and another clinic whose rows fall in the same range."""
    ClinicSettings.objects.create(organization=clinic, time_zone="Europe/Madrid")
    feb = datetime(2026, 2, 10, 12, tzinfo=UTC)
    ana = _patient(clinic, "Ana", "es", feb)
    ben = _patient(clinic, "Ben", "ca", datetime(2026, 3, 2, 10, tzinfo=UTC))
    cai = _patient(clinic, "Cai", "en", datetime(2026, 3, 1, 23, 30, tzinfo=UTC))  # the 2nd in Madrid
    dan = _patient(clinic, "Dan", "es", feb)
    _patient(clinic, "Eve", "es", datetime(2026, 3, 8, 0, 30, tzinfo=UTC))  # after the range: not counted
    archived = _patient(clinic, "Fay", "es", feb)
    Patient.objects.filter(pk=archived.pk).update(archived=True)
    # Ana: one conversation starting 2026-03-01 23:30 UTC = 2026-03-02 00:30 in Madrid (hour 0), 10 of her
    # messages and one answer: 11 messages, highly engaged.
    _messages(ana, datetime(2026, 3, 1, 23, 30, tzinfo=UTC), 10)
    _messages(ana, datetime(2026, 3, 1, 23, 55, tzinfo=UTC), 1, sender="assistant")
    # Ben: two conversations (the 2nd at 11:00 local, 2 messages; the 3rd at 16:00 local, 1): 3, moderately.
    _messages(ben, datetime(2026, 3, 2, 10, 0, tzinfo=UTC), 2)
    _messages(ben, datetime(2026, 3, 3, 15, 0, tzinfo=UTC), 1)
    # Cai: one message at 22:59 UTC = 23:59 local on the 2nd (hour 23): low.
    _messages(cai, datetime(2026, 3, 2, 22, 59, tzinfo=UTC), 1)
    # Dan: one message before the range (2026-02-28 22:30 UTC = 23:30 local on the 28th), then in the range
    # only system messages (reminders, notices; 10:00 local on the 4th): that is not engagement.
    _messages(dan, datetime(2026, 2, 28, 22, 30, tzinfo=UTC), 1)
    _messages(dan, datetime(2026, 3, 4, 9, 0, tzinfo=UTC), 2, sender="system")
    # Appointments starting in the range (local days 2, 2, 3, 5, 6, 7) and one after it.
    _appointment(ana, datetime(2026, 3, 2, 9, 0, tzinfo=UTC), "follow_up")
    _appointment(ben, datetime(2026, 3, 2, 23, 30, tzinfo=UTC), "follow_up", status="completed")  # 3rd local
    _appointment(cai, datetime(2026, 3, 1, 23, 15, tzinfo=UTC), "initial_consultation", reason="Patient unavailable")
    _appointment(dan, datetime(2026, 3, 5, 9, 0, tzinfo=UTC), "", reason=" patient  UNAVAILABLE")
    _appointment(ana, datetime(2026, 3, 6, 9, 0, tzinfo=UTC), "follow_up", reason="Therapist unavailable")
    moved = _appointment(ben, datetime(2026, 3, 7, 9, 0, tzinfo=UTC), "emergency")
    services.appointment_update(
        appointment=moved, start_time=datetime(2026, 3, 7, 10, 0, tzinfo=UTC), actor=ACTOR, now=BOOKED_AT
    )
    _appointment(ana, datetime(2026, 3, 7, 23, 0, tzinfo=UTC), "follow_up")  # the 8th in Madrid: out
    # The other clinic: everything in range, none of it may count.
    stranger = _patient(other_clinic, "Zoe", "ar", feb)
    _messages(stranger, datetime(2026, 3, 2, 10, 0, tzinfo=UTC), 12)
    _appointment(stranger, datetime(2026, 3, 3, 10, 0, tzinfo=UTC), "follow_up", reason="Patient unavailable")
    return {"ana": ana, "ben": ben, "cai": cai, "dan": dan}


def _get(http, user, path, query="") -> dict:
    response = http.get(f"{path}?{query}" if query else path, **_auth(user))
    assert response.status_code == 200, response.content[:500]
    assert response["Cache-Control"] == "no-store"
    return response.json()


def _error(response, status: int, parameter: str | None = None) -> dict:
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"]), body
    if parameter is not None:
        assert body["error"]["details"] == {"parameter": parameter}, body
    return body["error"]


def _sums_to_100(rows):
    if any(row["count"] for row in rows):
        assert sum(Decimal(str(row["percentage"])) for row in rows) == Decimal(100), rows


# --- Conversations --------------------------------------------------------------------------------------


def test_conversation_statistics_exact_figures(http, owner, data):
    body = _get(http, owner, CONVERSATIONS, WEEK)
    assert list(body) == ["total_conversations", "average_length", "by_interval", "by_language", "by_hour"]
    assert body["total_conversations"] == 5
    assert body["average_length"] == 3.4  # (11 + 2 + 1 + 1 + 2) / 5
    assert body["by_interval"] == [
        {"interval": "2026-03-01", "count": 0, "average_length": None},
        # Ana's conversation began at 23:30 UTC on the 1st: the 2nd in Madrid.
        {"interval": "2026-03-02", "count": 3, "average_length": 4.7},  # (11 + 2 + 1) / 3
        {"interval": "2026-03-03", "count": 1, "average_length": 1.0},
        {"interval": "2026-03-04", "count": 1, "average_length": 2.0},
        {"interval": "2026-03-05", "count": 0, "average_length": None},
        {"interval": "2026-03-06", "count": 0, "average_length": None},
        {"interval": "2026-03-07", "count": 0, "average_length": None},
    ]
    assert body["by_language"] == [
        {"language": "ca", "count": 2, "percentage": 40.0},
        {"language": "es", "count": 2, "percentage": 40.0},
        {"language": "en", "count": 1, "percentage": 20.0},
    ]
    assert [row["hour"] for row in body["by_hour"]] == list(range(24))
    counts = {row["hour"]: row["count"] for row in body["by_hour"] if row["count"]}
    assert counts == {0: 1, 10: 1, 11: 1, 16: 1, 23: 1}  # local: 00:30, 10:00, 11:00, 16:00, 23:59
    assert sum(row["count"] for row in body["by_hour"]) == body["total_conversations"]


def test_conversation_statistics_filtered_by_language(http, owner, data):
    body = _get(http, owner, CONVERSATIONS, WEEK + "&language=es")
    assert (body["total_conversations"], body["average_length"]) == (2, 6.5)  # Ana 11, Dan 2
    assert body["by_language"] == [{"language": "es", "count": 2, "percentage": 100.0}]
    assert {row["hour"]: row["count"] for row in body["by_hour"] if row["count"]} == {0: 1, 10: 1}
    assert len(body["by_hour"]) == 24
    empty = _get(http, owner, CONVERSATIONS, WEEK + "&language=fr")
    assert (empty["total_conversations"], empty["average_length"], empty["by_language"]) == (0, None, [])
    assert len(empty["by_interval"]) == 7 and len(empty["by_hour"]) == 24


def test_the_local_day_decides_not_utc(http, owner, data):
    # Through the end of the 1st in Madrid (22:59:59 UTC): Ana's 23:30 UTC conversation is not in it.
    first = _get(http, owner, CONVERSATIONS, "start_date=2026-03-01&end_date=2026-03-01")
    assert first["total_conversations"] == 0
    assert first["by_interval"] == [{"interval": "2026-03-01", "count": 0, "average_length": None}]
    # Date-times are instants: the last hour of the 1st in UTC holds Ana's conversation, on the 2nd locally.
    instants = _get(http, owner, CONVERSATIONS, "start_date=2026-03-01T23:00:00Z&end_date=2026-03-01T23:59:59Z")
    assert instants["total_conversations"] == 1
    assert instants["by_interval"] == [{"interval": "2026-03-02", "count": 1, "average_length": 11.0}]
    # The clinic's own zone is the one used: in UTC the same conversation is on the 1st, at hour 23.
    ClinicSettings.objects.filter(organization=data["ana"].organization).update(time_zone="UTC")
    utc = _get(http, owner, CONVERSATIONS, WEEK)
    assert utc["by_interval"][0] == {"interval": "2026-03-01", "count": 1, "average_length": 11.0}
    assert {row["hour"]: row["count"] for row in utc["by_hour"] if row["count"]} == {9: 1, 10: 1, 15: 1, 22: 1, 23: 1}


def test_week_and_month_intervals_are_named_by_their_first_day(http, owner, data):
    weeks = _get(http, owner, CONVERSATIONS, WEEK + "&interval=week")
    # Sunday the 1st belongs to the week starting Monday 23 February.
    assert weeks["by_interval"] == [
        {"interval": "2026-02-23", "count": 0, "average_length": None},
        {"interval": "2026-03-02", "count": 5, "average_length": 3.4},
    ]
    months = _get(http, owner, CONVERSATIONS, "start_date=2026-02-15&end_date=2026-03-07&interval=month")
    assert months["by_interval"] == [
        {"interval": "2026-02-01", "count": 1, "average_length": 1.0},  # Dan's on the 28th
        {"interval": "2026-03-01", "count": 5, "average_length": 3.4},
    ]


def test_defaults_are_the_last_30_local_days_by_day(http, owner, data, monkeypatch):
    monkeypatch.setattr("patients.api.analytics.utc_now", lambda: datetime(2026, 3, 7, 23, 30, tzinfo=UTC))
    body = _get(http, owner, CONVERSATIONS)
    # 23:30 UTC on the 7th is already the 8th in Madrid: the 30 days end on the 8th.
    assert len(body["by_interval"]) == 30
    assert (body["by_interval"][0]["interval"], body["by_interval"][-1]["interval"]) == ("2026-02-07", "2026-03-08")
    assert body["total_conversations"] == 6  # the week's 5 and Dan's on the 28th


# --- Appointments ---------------------------------------------------------------------------------------


def test_appointment_statistics_exact_figures(http, owner, data):
    body = _get(http, owner, APPOINTMENTS, WEEK)
    assert list(body) == ["total_appointments", "by_status", "by_type", "by_interval", "cancellation_reasons"]
    assert body["total_appointments"] == 6
    assert body["by_status"] == [
        {"status": "scheduled", "count": 1, "percentage": 16.7},
        {"status": "rescheduled", "count": 1, "percentage": 16.7},
        {"status": "completed", "count": 1, "percentage": 16.6},
        {"status": "canceled", "count": 3, "percentage": 50.0},
    ]
    assert body["by_type"] == [
        {"type": "follow_up", "count": 3, "percentage": 50.0},
        {"type": "", "count": 1, "percentage": 16.7},
        {"type": "emergency", "count": 1, "percentage": 16.7},
        {"type": "initial_consultation", "count": 1, "percentage": 16.6},
    ]
    zero = {"scheduled": 0, "rescheduled": 0, "completed": 0, "canceled": 0}
    assert body["by_interval"] == [
        {"interval": "2026-03-01", **zero},
        {"interval": "2026-03-02", **zero, "scheduled": 1, "canceled": 1},  # Cai's at 23:15 UTC on the 1st
        {"interval": "2026-03-03", **zero, "completed": 1},  # Ben's at 23:30 UTC on the 2nd
        {"interval": "2026-03-04", **zero},
        {"interval": "2026-03-05", **zero, "canceled": 1},
        {"interval": "2026-03-06", **zero, "canceled": 1},
        {"interval": "2026-03-07", **zero, "rescheduled": 1},  # Ana's at 23:00 UTC on the 7th is the 8th
    ]
    assert body["cancellation_reasons"] == [
        {"reason": "Patient unavailable", "count": 2, "percentage": 66.7},
        {"reason": "Therapist unavailable", "count": 1, "percentage": 33.3},
    ]
    for breakdown in ("by_status", "by_type", "cancellation_reasons"):
        _sums_to_100(body[breakdown])


def test_empty_range_has_every_interval_and_zero_percentages(http, owner, data):
    body = _get(http, owner, APPOINTMENTS, "start_date=2025-01-01&end_date=2025-03-31&interval=month")
    assert body["total_appointments"] == 0
    assert [row["interval"] for row in body["by_interval"]] == ["2025-01-01", "2025-02-01", "2025-03-01"]
    assert [row["percentage"] for row in body["by_status"]] == [0.0, 0.0, 0.0, 0.0]
    assert (body["by_type"], body["cancellation_reasons"]) == ([], [])


# --- Patients -------------------------------------------------------------------------------------------


def test_patient_statistics_exact_figures(http, owner, data):
    body = _get(http, owner, PATIENTS, WEEK)
    assert list(body) == ["total_patients", "active_patients", "by_language", "new_patients_by_interval", "engagement"]
    # Ana, Ben, Cai, Dan (Eve registered after the range, Fay is archived, Zoe is another clinic's).
    assert (body["total_patients"], body["active_patients"]) == (4, 3)
    assert body["by_language"] == [
        {"language": "es", "count": 2, "percentage": 50.0},
        {"language": "ca", "count": 1, "percentage": 25.0},
        {"language": "en", "count": 1, "percentage": 25.0},
    ]
    assert body["new_patients_by_interval"] == [
        {"interval": "2026-03-01", "count": 0},
        {"interval": "2026-03-02", "count": 2},  # Ben, and Cai (23:30 UTC on the 1st)
        *({"interval": f"2026-03-0{day}", "count": 0} for day in range(3, 8)),
    ]
    # Ana wrote 10, Ben 3, Cai 1; Dan only received system messages in the range.
    assert body["engagement"] == {"highly_engaged": 1, "moderately_engaged": 1, "low_engagement": 1, "inactive": 1}
    assert sum(body["engagement"].values()) == body["total_patients"]


def test_another_clinic_sees_only_its_own(http, other_clinic, data):
    stranger = _member("stranger", "owner", other_clinic)
    conversations = _get(http, stranger, CONVERSATIONS, WEEK)
    assert conversations["total_conversations"] == 1
    assert conversations["by_language"] == [{"language": "ar", "count": 1, "percentage": 100.0}]
    appointments = _get(http, stranger, APPOINTMENTS, WEEK)
    assert appointments["total_appointments"] == 1
    assert appointments["cancellation_reasons"] == [{"reason": "Patient unavailable", "count": 1, "percentage": 100.0}]
    patients = _get(http, stranger, PATIENTS, WEEK)
    assert (patients["total_patients"], patients["engagement"]["highly_engaged"]) == (1, 1)


# --- Roles, errors, query counts ------------------------------------------------------------------------


@pytest.mark.parametrize("path", [CONVERSATIONS, APPOINTMENTS, PATIENTS])
def test_roles_viewer_reads_anonymous_401_other_roles_403(http, clinic, path):
    assert http.get(path, **_auth(_member("viewer", "viewer", clinic))).status_code == 200
    assert http.get(path, **_auth(_member("staff", "staff", clinic))).status_code == 200
    _error(http.get(path), 401)
    _error(http.get(path, **_auth(_member("therapist", "therapist", clinic))), 403)
    _error(http.post(path, {}, content_type="application/json", **_auth(_member("admin", "admin", clinic))), 405)


@pytest.mark.parametrize("path", [CONVERSATIONS, APPOINTMENTS, PATIENTS])
@pytest.mark.parametrize(
    "query, parameter",
    [
        ("start_date=yesterday", "start_date"),
        ("end_date=2026-02-30", "end_date"),
        ("start_date=2026-03-01T25:00:00Z", "start_date"),
        ("start_date=2026-03-01%00", "start_date"),
        ("start_date=" + "2" * 80, "start_date"),
        ("start_date=0001-01-01", "start_date"),
        ("end_date=9999-12-31T23:59:59Z", "end_date"),
        ("interval=year", "interval"),
        ("interval=", "interval"),
        ("start_date=2026-03-02&end_date=2026-03-01", "end_date"),
        ("start_date=2026-03-01T10:00:00Z&end_date=2026-03-01T09:59:59Z", "end_date"),
        ("start_date=2024-01-01&end_date=2025-01-01", "end_date"),  # 367 days
    ],
)
def test_bad_parameters_are_400_naming_them(http, owner, path, query, parameter):
    error = _error(http.get(f"{path}?{query}", **_auth(owner)), 400, parameter)
    assert error["code"]


def test_bad_language_is_400_and_the_span_limit_is_a_setting(http, owner, settings):
    _error(http.get(f"{CONVERSATIONS}?language={'x' * 11}", **_auth(owner)), 400, "language")
    assert http.get(f"{PATIENTS}?start_date=2024-01-01&end_date=2024-12-31", **_auth(owner)).status_code == 200
    settings.MARK_ANALYTICS_MAX_DAYS = 7
    assert http.get(f"{PATIENTS}?{WEEK}", **_auth(owner)).status_code == 200
    error = _error(http.get(f"{PATIENTS}?start_date=2026-03-01&end_date=2026-03-08", **_auth(owner)), 400, "end_date")
    assert "at most 7" in error["message"]


def _grow(clinic, n: int, offset: int) -> None:
    """n patients, each with a two-message conversation and an appointment (one in three canceled)."""
    start = datetime(2026, 3, 3, 8, tzinfo=UTC)
    patients = Patient.objects.bulk_create(
        Patient(organization=clinic, name=f"P{offset + i}", language=("es", "ca", "en")[i % 3], created_at=start)
        for i in range(n)
    )
    conversations = Conversation.objects.bulk_create(
        Conversation(
            organization=clinic, patient=p, language=p.language, start_time=start + timedelta(hours=i % 24),
            message_count=2,
        )
        for i, p in enumerate(patients)
    )  # fmt: skip
    from patients.models import Message

    Message.objects.bulk_create(
        Message(organization=clinic, conversation=c, sender="patient", content="x", created_at=c.start_time)
        for c in conversations
    )
    Appointment.objects.bulk_create(
        Appointment(
            organization=clinic, patient=p, start_time=start + timedelta(days=i % 3), duration=30,
            end_time=start + timedelta(days=i % 3, minutes=30), appointment_type=f"t{i % 4}",
            status="canceled" if i % 3 == 0 else "scheduled", cancellation_reason=f"reason {i % 5}",
        )
        for i, p in enumerate(patients)
    )  # fmt: skip


def test_query_counts_do_not_grow_with_rows(http, clinic, owner):
    counts = {}
    for size, n in (("few", 5), ("many", 45)):
        _grow(clinic, n, offset=len(counts) * 100)
        for path in (CONVERSATIONS, APPOINTMENTS, PATIENTS):
            for interval in analytics.INTERVALS:
                with CaptureQueriesContext(connection) as queries:
                    body = _get(http, owner, path, f"{WEEK}&interval={interval}")
                counts[(size, path, interval)] = len(queries.captured_queries)
        assert body["total_patients"] == (5 if size == "few" else 50)
    for path in (CONVERSATIONS, APPOINTMENTS, PATIENTS):
        for interval in analytics.INTERVALS:
            assert counts[("few", path, interval)] == counts[("many", path, interval)], (path, interval, counts)
    # The analytics themselves: 3 aggregates per endpoint (plus authentication, scoping, settings, access log).
    assert counts[("many", PATIENTS, "day")] == counts[("many", CONVERSATIONS, "day")]
    assert counts[("many", APPOINTMENTS, "day")] <= 10


def test_the_selectors_run_a_fixed_number_of_queries(clinic, data):
    from zoneinfo import ZoneInfo

    from patients import analytics_queries

    period = analytics.resolve_range(
        start=date(2026, 3, 1), end=date(2026, 3, 7), today=date(2026, 3, 7), time_zone=ZoneInfo("Europe/Madrid"),
        max_days=366,
    )  # fmt: skip
    # Appointments: one more, the sample row of each shown cancellation reason (grouped by blind index).
    for selector, expected in (
        (analytics_queries.conversation_aggregates, 3),
        (analytics_queries.appointment_aggregates, 4),
        (analytics_queries.patient_aggregates, 3),
    ):
        with CaptureQueriesContext(connection) as queries:
            selector(organization=clinic, period=period, interval="day")
        assert len(queries.captured_queries) == expected, selector.__name__
