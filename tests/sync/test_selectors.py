"""sync.selectors: the Routiq definitions at their boundaries, with an injected clock (recent = within the last
ROUTIQ_RECENT_DAYS days inclusive, upcoming = after now, cancelled never counts), the summaries equal to the
lists, and flat query counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sync import selectors
from sync.models import ClinikoConnection, SyncRun
from tests.sync.read_factories import make_appointment, make_organization, make_patient

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def org(db):
    return make_organization("Clinic A")


def _one(queryset, patient):
    return queryset.get(pk=patient.pk)


def test_recent_window_is_inclusive_at_exactly_thirty_days(org):
    edge = make_patient(org, "Edge")
    make_appointment(edge, NOW - 30 * DAY)
    outside = make_patient(org, "Outside")
    make_appointment(outside, NOW - 30 * DAY - timedelta(seconds=1))
    rows = selectors.patients_annotated(organization=org, now=NOW)
    assert _one(rows, edge).recent_appointment_count == 1
    assert _one(rows, edge).is_active is True
    assert _one(rows, outside).recent_appointment_count == 0
    assert _one(rows, outside).is_active is False
    assert _one(rows, outside).activity_status == selectors.ACTIVITY_IMPORTED
    assert list(selectors.active_patients(organization=org, now=NOW)) == [edge]


def test_recent_days_setting_moves_the_window(org, settings):
    patient = make_patient(org)
    make_appointment(patient, NOW - 40 * DAY)
    assert _one(selectors.patients_annotated(organization=org, now=NOW), patient).is_active is False
    settings.ROUTIQ_RECENT_DAYS = 45
    assert _one(selectors.patients_annotated(organization=org, now=NOW), patient).is_active is True


def test_cancelled_appointments_never_count(org):
    patient = make_patient(org)
    make_appointment(patient, NOW - 2 * DAY, cancelled=True)
    make_appointment(patient, NOW + 2 * DAY, cancelled=True)
    row = _one(selectors.patients_annotated(organization=org, now=NOW), patient)
    assert (row.recent_appointment_count, row.upcoming_appointment_count, row.total_appointment_count) == (0, 0, 0)
    assert row.is_active is False
    assert row.next_appointment_time is None
    assert row.first_appointment_date is None


def test_now_is_not_upcoming_and_the_clock_moves_the_fields(org):
    patient = make_patient(org)
    appointment = make_appointment(patient, NOW + 2 * DAY, type_="Massage")
    before = _one(selectors.patients_annotated(organization=org, now=NOW), patient)
    assert (before.upcoming_appointment_count, before.recent_appointment_count) == (1, 0)
    assert before.activity_status == selectors.ACTIVITY_HAS_UPCOMING
    assert before.next_appointment_time == appointment.start_time
    assert before.next_appointment_type == "Massage"
    # At its start it is no longer upcoming but recent.
    at_start = _one(selectors.patients_annotated(organization=org, now=appointment.start_time), patient)
    assert (at_start.upcoming_appointment_count, at_start.recent_appointment_count) == (0, 1)
    assert at_start.activity_status == selectors.ACTIVITY_RECENT
    assert at_start.last_appointment_date == appointment.start_time
    # Thirty-one days later it is neither.
    later = _one(selectors.patients_annotated(organization=org, now=NOW + 33 * DAY), patient)
    assert later.is_active is False


def test_activity_status_active_and_primary_type_is_most_frequent(org):
    patient = make_patient(org)
    make_appointment(patient, NOW - 100 * DAY, type_="Physiotherapy")
    make_appointment(patient, NOW - 90 * DAY, type_="Physiotherapy")
    make_appointment(patient, NOW - 80 * DAY, type_="Massage", cancelled=True)
    make_appointment(patient, NOW - 70 * DAY, type_="Massage", cancelled=True)
    make_appointment(patient, NOW - 3 * DAY, type_="Massage")
    make_appointment(patient, NOW + 3 * DAY, type_="Pilates")
    make_appointment(patient, NOW + 9 * DAY, type_="Massage")
    row = _one(selectors.patients_annotated(organization=org, now=NOW), patient)
    assert row.activity_status == selectors.ACTIVITY_ACTIVE
    assert row.total_appointment_count == 5
    # Massage 2, Physiotherapy 2 (cancelled ones do not count): the tie goes to the alphabetically first.
    assert row.primary_appointment_type == "Massage"
    assert row.next_appointment_type == "Pilates"
    assert row.first_appointment_date == NOW - 100 * DAY
    assert row.last_appointment_date == NOW - 3 * DAY


def test_archived_patients_are_never_listed_nor_counted(org):
    archived = make_patient(org, archived=True)
    make_appointment(archived, NOW + DAY)
    assert list(selectors.active_patients(organization=org, now=NOW)) == []
    assert selectors.dashboard_summary(organization=org, now=NOW)["total_patients"] == 0


def test_with_appointments_priority_and_hours(org):
    soon, week, later, recent_only = (make_patient(org, name) for name in ("Soon", "Week", "Later", "Recent"))
    make_appointment(soon, NOW + timedelta(hours=18, minutes=30))
    make_appointment(week, NOW + 3 * DAY)
    make_appointment(later, NOW + 10 * DAY)
    make_appointment(recent_only, NOW - DAY)
    rows = list(selectors.patients_with_appointments(organization=org, now=NOW))
    assert [row.pk for row in rows] == [soon.pk, week.pk, later.pk]
    assert [row.priority for row in rows] == ["high", "medium", "low"]
    assert rows[0].time_until_next_appointment == timedelta(hours=18, minutes=30)


def test_by_appointment_type_matches_next_or_primary_any_name(org):
    name = "Fisioterapia pélvica / suelo 🩺"
    one, two, other = make_patient(org, "One"), make_patient(org, "Two"), make_patient(org, "Other")
    make_appointment(one, NOW + DAY, type_=name)
    make_appointment(two, NOW - DAY, type_=name)
    make_appointment(two, NOW + DAY, type_="Massage")
    make_appointment(other, NOW + DAY, type_="Massage")
    found = selectors.patients_by_appointment_type(organization=org, appointment_type=name, now=NOW)
    assert {patient.pk for patient in found} == {one.pk, two.pk}


def test_summaries_equal_the_lists(org):
    for i in range(7):
        patient = make_patient(org, f"P{i}")
        if i % 2:
            make_appointment(patient, NOW - (i + 1) * DAY, type_="Massage")
        if i % 3 == 0:
            make_appointment(patient, NOW + (i + 1) * DAY, type_="Physiotherapy")
    make_patient(org, "No appointments")
    active = list(selectors.active_patients(organization=org, now=NOW))
    with_appointments = list(selectors.patients_with_appointments(organization=org, now=NOW))
    summary = selectors.active_summary(organization=org, now=NOW)
    dashboard = selectors.dashboard_summary(organization=org, now=NOW)
    assert summary["total_active_patients"] == len(active) == dashboard["active_patients"] == 5
    assert (
        summary["patients_with_upcoming_appointments"] == len(with_appointments) == dashboard["patients_with_upcoming"]
    )
    assert summary["patients_with_recent_appointments"] == sum(1 for p in active if p.recent_appointment_count)
    assert dashboard["total_patients"] == 8
    assert dashboard["total_upcoming_appointments"] == sum(p.upcoming_appointment_count for p in active)
    assert dashboard["total_all_appointments"] == sum(p.total_appointment_count for p in active)
    types = selectors.appointment_type_summary(organization=org, now=NOW)
    assert sum(row["patient_count"] for row in types) == len(active)
    assert sum(row["patients_with_upcoming"] for row in types) == len(with_appointments)
    for row in types:
        if row["patients_with_upcoming"]:
            assert row["earliest_upcoming"] <= row["latest_upcoming"]


def test_other_organizations_rows_never_count(org):
    other = make_organization("Clinic B")
    make_appointment(make_patient(other, "Theirs"), NOW + DAY)
    mine = make_patient(org, "Mine")
    make_appointment(mine, NOW + DAY)
    assert [p.pk for p in selectors.active_patients(organization=org, now=NOW)] == [mine.pk]
    assert selectors.dashboard_summary(organization=org, now=NOW)["total_all_appointments"] == 1


def test_treatment_notes_are_the_latest_appointments(org):
    patient = make_patient(org)
    make_appointment(patient, NOW - 10 * DAY, notes="older note")
    make_appointment(patient, NOW - 2 * DAY, notes="Lower back pain treatment")
    make_appointment(patient, NOW + 2 * DAY, notes="cancelled booking", cancelled=True)
    total, page = selectors.patient_page(
        selectors.active_patients(organization=org, now=NOW, days=30), now=NOW, days=30, limit=10, offset=0
    )
    assert total == 1
    assert page[0].treatment_notes == "Lower back pain treatment"
    assert [a.start_time for a in page[0].recent_appointments] == [NOW - 2 * DAY, NOW - 10 * DAY]
    assert page[0].upcoming_appointments == []


def test_arrays_hold_a_few_entries_each(org):
    patient = make_patient(org)
    for i in range(8):
        make_appointment(patient, NOW + (i + 1) * DAY)
    _total, page = selectors.patient_page(
        selectors.active_patients(organization=org, now=NOW, days=30), now=NOW, days=30, limit=5, offset=0
    )
    upcoming = page[0].upcoming_appointments
    assert len(upcoming) == selectors.APPOINTMENTS_PER_ARRAY
    assert [a.start_time for a in upcoming] == [NOW + (i + 1) * DAY for i in range(selectors.APPOINTMENTS_PER_ARRAY)]


def _page_queries(org, count: int) -> int:
    for i in range(count):
        patient = make_patient(org, f"Q{i}")
        make_appointment(patient, NOW - DAY, notes="n")
        make_appointment(patient, NOW + DAY)
    with CaptureQueriesContext(connection) as queries:
        days = selectors.recent_days(org)  # as the view does: one read of the clinic's window
        _total, page = selectors.patient_page(
            selectors.active_patients(organization=org, now=NOW, days=days), now=NOW, days=days, limit=500, offset=0
        )
        assert len(page) == count
    return len(queries)


def test_page_queries_are_flat_in_the_number_of_patients(org):
    small = _page_queries(org, 5)
    large = _page_queries(make_organization("Clinic C"), 50)
    assert small == large <= 6  # the clinic's window, COUNT, page, two prefetches, notes


def test_activity_newest_first_and_dashboard_connection(org):
    first = SyncRun.objects.create(organization=org, status=SyncRun.Status.COMPLETED, completed_at=NOW - DAY)
    second = SyncRun.objects.create(organization=org, status=SyncRun.Status.FAILED, created_at=first.created_at + DAY)
    SyncRun.objects.create(organization=make_organization("Clinic D"), status=SyncRun.Status.COMPLETED)
    assert selectors.sync_activity(organization=org, limit=10) == [second, first]
    assert selectors.sync_activity(organization=org, limit=1) == [second]
    summary = selectors.dashboard_summary(organization=org, now=NOW)
    assert summary["last_sync_time"] == NOW - DAY
    assert summary["connected"] is False
    ClinikoConnection.objects.create(organization=org, api_key="k-au4", credentials_valid=False)
    summary = selectors.dashboard_summary(organization=org, now=NOW)
    assert (summary["connected"], summary["credentials_valid"]) == (True, False)


def test_treatment_notes_prefer_the_latest_begun_then_the_next(org):
    patient = make_patient(org)
    make_appointment(patient, NOW - 5 * DAY, notes="after the session")
    make_appointment(patient, NOW + 5 * DAY, notes="booking note")
    only_future = make_patient(org, "Future")
    make_appointment(only_future, NOW + 5 * DAY, notes="first visit")
    make_appointment(only_future, NOW + 9 * DAY, notes="second visit")
    _total, page = selectors.patient_page(
        selectors.active_patients(organization=org, now=NOW, days=30), now=NOW, days=30, limit=10, offset=0
    )
    notes = {p.pk: p.treatment_notes for p in page}
    assert notes == {patient.pk: "after the session", only_future.pk: "first visit"}
