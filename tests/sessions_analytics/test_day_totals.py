"""The kept per-therapist day totals (TherapistDay): the services keep them equal to the totals recomputed
from the sessions after any mix of writes, concurrent writes to one day lose nothing (PostgreSQL), and the
derived analytics' day rows read from them are exactly those of adding up every session, whatever instant
the range and the previous period start at."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections, transaction

from core.actors import Actor
from core.scoping import OrganizationScope, Role
from sessions_analytics import selectors, services
from sessions_analytics.aggregates import _day_rows
from sessions_analytics.analytics import DayRow
from sessions_analytics.day_totals import DayTotals, day_totals, days_refill, totals_fields
from sessions_analytics.models import TherapistDay, TrainingSession
from tests.sessions_analytics.factories import NOW, make_session, make_world

COMPLETED = TrainingSession.Status.COMPLETED
MIDNIGHT = datetime(2026, 3, 2, tzinfo=UTC)  # NOW's UTC day


def access(world, user) -> selectors.Access:
    scope = OrganizationScope(
        organization=world.organization, public_id=world.organization.public_id, role=Role.THERAPIST
    )
    return selectors.access_for(scope, user)


def progress_metrics(response_time: float, milestones: list[str]) -> dict:
    return {
        "total_messages": 20,
        "therapist_messages": 10,
        "client_messages": 9,
        "session_duration": 900,
        "active_time": 800,
        "response_time": response_time,
        "conversation_flow": 75.0,
        "milestones_reached": milestones,
    }


def kept() -> dict:
    fields = list(totals_fields(DayTotals()))
    return {
        (row.organization_id, row.therapist_id, row.day): {field: getattr(row, field) for field in fields}
        for row in TherapistDay.objects.all()
    }


def recomputed() -> dict:
    return {key: totals_fields(totals) for key, totals in day_totals(TrainingSession.objects.all()).items()}


@pytest.mark.django_db
def test_after_a_random_mix_of_service_calls_every_kept_day_equals_its_sessions():
    world = make_world()
    rng = random.Random(20260302)
    therapists = [world.therapist, world.other_therapist]
    sessions: list[TrainingSession] = []
    for step in range(120):
        action = rng.choice(["create", "create", "progress", "status", "record"]) if sessions else "create"
        if action == "create":
            therapist = rng.choice(therapists)
            # Three days, starts spread over each and on the midnights, some on the same instant.
            start = MIDNIGHT + timedelta(days=rng.randrange(-1, 2), minutes=rng.choice([0, 0, 1, 600, 1439]))
            sessions.append(
                services.session_create(
                    access=access(world, therapist),
                    client_label=f"sim-{step}",
                    actor=Actor.user(therapist),
                    start_time=start,
                )
            )
            continue
        session = TrainingSession.objects.get(pk=rng.choice(sessions).pk)
        if action == "progress":
            services.session_update(
                session=session, actor=Actor.system("tests"), progress=rng.choice([0.1, 0.2, 33.3, 66.7, 100])
            )
        elif action == "status" and session.status not in services.ENDED:
            status = rng.choice(["paused", "active", COMPLETED, "cancelled"])
            if status != session.status:
                services.session_update(session=session, actor=Actor.system("tests"), status=status, now=NOW)
        elif action == "record":
            services.progress_record(
                session=session,
                author=session.therapist,
                metrics=progress_metrics(rng.choice([0.7, 1.1, 2.25]), rng.sample(["a", "b", "c", "d"], 2)),
                feedback=None,
                actor=Actor.system("tests"),
                now=NOW,
            )
    expected = recomputed()
    assert len(expected) >= 4  # two therapists over several days
    assert sum(t["completed"] for t in expected.values()) > 0
    assert sum(t["milestones"] for t in expected.values()) > 0
    assert kept() == expected


@pytest.mark.django_db
def test_the_backfill_writes_every_day_of_the_sessions_and_nothing_else():
    world = make_world()
    make_session(world.therapist, world.organization, start=MIDNIGHT - timedelta(seconds=1), progress=10)
    make_session(world.therapist, world.organization, start=MIDNIGHT, status=COMPLETED, progress=20)
    make_session(world.other_therapist, world.organization, start=MIDNIGHT, progress=30)
    TherapistDay.objects.all().delete()
    TherapistDay.objects.create(
        organization=world.organization, therapist=world.therapist, day=NOW.date().replace(year=1999)
    )
    assert days_refill(TrainingSession, TherapistDay) == 3
    assert kept() == recomputed()
    day = TherapistDay.objects.get(therapist=world.therapist, day=MIDNIGHT.date())
    assert (day.sessions, day.completed, day.progress_sum) == (1, 1, 20)


# --- Concurrent writes to one day (PostgreSQL) ------------------------------------------------------------------


def waiting_on_a_lock_or_done(thread: threading.Thread, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not thread.is_alive():
            return True
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.02)
    return False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writes_to_one_day_lose_no_counts(require_postgres):
    world = make_world()
    first_session = make_session(world.therapist, world.organization, start=NOW, progress=10)
    second_session = make_session(world.therapist, world.organization, start=NOW + timedelta(hours=1), progress=20)
    first_written = threading.Event()
    release_first = threading.Event()

    def first() -> None:
        try:
            with transaction.atomic():
                services.session_update(session=first_session, actor=Actor.system("tests"), progress=40)
                first_written.set()  # the day recounted and locked, not committed
                release_first.wait(30)
        finally:
            connections.close_all()

    def second() -> None:
        try:
            services.session_update(session=second_session, actor=Actor.system("tests"), status=COMPLETED, now=NOW)
        finally:
            connections.close_all()

    one = threading.Thread(target=first)
    one.start()
    assert first_written.wait(30)
    two = threading.Thread(target=second)
    two.start()
    # Without the day row's lock the second would recount before the first commits, and write back the
    # first session's old progress.
    assert waiting_on_a_lock_or_done(two)
    release_first.set()
    one.join(30)
    two.join(30)
    day = TherapistDay.objects.get(therapist=world.therapist, day=NOW.date())
    assert (day.sessions, day.completed, day.progress_sum) == (2, 1, 60)
    assert kept() == recomputed()


# --- The day rows read from them ----------------------------------------------------------------------------


def every_session_added_up(therapist, since: datetime | None, now: datetime) -> list[DayRow]:
    """The day rows as adding up every session of the period one by one gives them (the read before the kept
    totals)."""
    sessions = TrainingSession.objects.filter(therapist=therapist).select_related("progress_metrics")
    if since is not None:
        sessions = sessions.filter(start_time__gte=since - (now - since))
    rows: dict[tuple, dict] = {}
    for session in sessions.order_by("start_time", "pk"):
        in_range = since is None or session.start_time >= since
        row = rows.setdefault(
            (session.start_time.astimezone(UTC).date(), in_range),
            {
                "sessions": 0,
                "completed": 0,
                "progress_sum": 0.0,
                "with_metrics": 0,
                "response_time_sum": 0.0,
                "milestones": 0,
                "latest_session_id": None,
            },
        )
        row["sessions"] += 1
        row["completed"] += session.status == COMPLETED
        row["progress_sum"] += session.progress
        metrics = getattr(session, "progress_metrics", None)
        if metrics is not None:
            row["with_metrics"] += 1
            row["response_time_sum"] += metrics.response_time
        row["milestones"] += session.milestones.count()
        if in_range:
            row["latest_session_id"] = session.public_id
    return [DayRow(day=day, in_range=in_range, **row) for (day, in_range), row in rows.items()]


@pytest.mark.django_db
def test_day_rows_are_exactly_those_of_adding_up_every_session_for_boundaries_mid_day():
    world = make_world()
    rng = random.Random(7)
    therapist = world.therapist
    for index in range(90):
        start = NOW - timedelta(days=rng.randrange(0, 12), minutes=rng.randrange(0, 1440))
        session = services.session_create(
            access=access(world, therapist), client_label=f"sim-{index}", actor=Actor.user(therapist), start_time=start
        )
        if index % 3:
            services.session_update(session=session, actor=Actor.user(therapist), progress=rng.choice([0.1, 33.3, 71]))
        if index % 4 == 0:
            services.progress_record(
                session=session,
                author=therapist,
                metrics=progress_metrics(rng.choice([0.3, 1.7]), ["x"] if index % 8 else ["x", "y"]),
                feedback=None,
                actor=Actor.user(therapist),
                now=NOW,
            )
        if index % 5 == 0:
            services.session_update(session=session, actor=Actor.user(therapist), status=COMPLETED, now=NOW)
    # A session exactly on the range's start, and another therapist's session that must not count.
    make_session(therapist, world.organization, start=NOW - timedelta(days=3, hours=5), progress=12.5)
    make_session(world.other_therapist, world.organization, start=NOW - timedelta(days=1), progress=99)
    ranges = [
        (None, NOW),
        (NOW - timedelta(days=3, hours=5), NOW),  # both boundaries mid-day, on different days
        (NOW - timedelta(hours=5), NOW),  # the previous period starts the same day as the range
        (MIDNIGHT - timedelta(days=2), MIDNIGHT),  # boundaries on midnights
        (NOW - timedelta(days=4, minutes=17), NOW + timedelta(minutes=3)),
        (NOW + timedelta(days=1), NOW),  # a range starting after now: all of it in the range
    ]
    checked = 0
    for since, now in ranges:
        expected = every_session_added_up(therapist, since, now)
        got = _day_rows(since, now, organization_id=world.organization.pk, therapist_id=therapist.pk)
        assert got == expected, (since, now)
        checked += len(expected)
    assert checked > 20
