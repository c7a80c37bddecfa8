"""The derived-analytics body cache (core.body_cache + the therapist's AnalyticsGeneration): a cached body is
served only while it is exactly what a new derivation would give. Every write service replaces the generation
in its own transaction; the clock moving the range is bounded by `derived_analytics_valid_until`; a cache that
fails is a miss. Each test compares with the same request computed with the cache turned off."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings

from sessions_analytics import aggregates, services
from sessions_analytics.models import AnalyticsGeneration
from sessions_analytics.selectors import Access
from tests.sessions_analytics.factories import (
    ACTOR,
    NOW,
    make_score,
    make_session,
    make_skill,
    make_snapshots,
    make_world,
    send,
)

pytestmark = pytest.mark.django_db

ANALYTICS = "/api/session/analytics"
YEAR = timedelta(days=365)


@pytest.fixture
def clock(monkeypatch):
    """The analytics view's clock, set by the test."""
    state = {"now": NOW}
    monkeypatch.setattr("sessions_analytics.api.views.utc_now", lambda: state["now"])
    return state


@pytest.fixture
def world():
    return make_world()


@pytest.fixture
def history(world):
    """Twelve sessions of the therapist over ~2 years before NOW (so 1y has an in-range part and a previous
    period), with scores and the latest session's snapshots, written as rows, then a generation made as a
    bulk load must."""
    skill = make_skill(world.organization, "empathy", "Empathy")
    sessions = []
    for i in range(12):
        session = make_session(
            world.therapist,
            world.organization,
            start=NOW - timedelta(days=700) + timedelta(days=60 * i, hours=i),
            status="completed",
            progress=10 + 7 * i,
        )
        make_score(session, skill, 20 + 5 * i)
        sessions.append(session)
    latest = sessions[-1]
    make_snapshots(latest, [5, 9, 14])
    services.analytics_changed(organization_id=world.organization.pk, therapist_id=world.therapist.pk)
    return sessions


def get(user, session, time_range: str | None = "1y", **extra):
    params = {"sessionId": session.public_id}
    if time_range:
        params["timeRange"] = time_range
    return send("get", ANALYTICS, user, params, **extra)


def fresh(user, session, time_range: str | None = "1y") -> bytes:
    with override_settings(BODY_CACHE_SECONDS=0):
        response = get(user, session, time_range)
    assert response.status_code == 200, response.content[:300]
    return response.content


def cached(user, session, time_range: str | None = "1y") -> tuple[bytes, int]:
    with CaptureQueriesContext(connection) as captured:
        response = get(user, session, time_range)
    assert response.status_code == 200, response.content[:300]
    return response.content, len(captured)


def test_a_repeated_read_is_served_from_the_cache_byte_for_byte_with_fewer_queries(world, history, clock):
    first, miss_queries = cached(world.therapist, history[-1])
    second, hit_queries = cached(world.therapist, history[-1])
    assert first == second == fresh(world.therapist, history[-1])
    assert hit_queries < miss_queries
    # The hit reads the session, its generation and writes the access row: nothing of the body's rows.
    with CaptureQueriesContext(connection) as captured:
        get(world.therapist, history[-1])
    tables = " ".join(q["sql"] for q in captured.captured_queries)
    for table in ("progressmetrics", "sessionskillscore", "progresssnapshot", "milestone"):
        assert table not in tables


def test_headers_of_a_hit_equal_a_miss(world, history, clock):
    miss = get(world.therapist, history[-1])
    hit = get(world.therapist, history[-1])
    assert miss["Content-Type"] == hit["Content-Type"] == "application/json"
    assert {
        k: v for k, v in miss.items() if k.lower() not in {"x-request-id", "date"} and "ratelimit" not in k.lower()
    } == {k: v for k, v in hit.items() if k.lower() not in {"x-request-id", "date"} and "ratelimit" not in k.lower()}


def test_every_range_and_session_has_its_own_entry(world, history, clock):
    for time_range in ("7d", "30d", "90d", "1y", None):
        body, _ = cached(world.therapist, history[-1], time_range)
        assert body == fresh(world.therapist, history[-1], time_range)
    other_body, _ = cached(world.therapist, history[-2])  # same therapist, another session: its own snapshots
    assert other_body == fresh(world.therapist, history[-2])
    assert other_body != cached(world.therapist, history[-1])[0]


def _write_each_way(world, history):
    """Each service write that can change derived analytics, as (name, callable)."""
    access = Access(organization=world.organization, user=world.therapist, role="therapist")
    latest = history[-1]
    metrics = {
        "total_messages": 10,
        "therapist_messages": 5,
        "client_messages": 5,
        "session_duration": 600,
        "active_time": 500,
        "response_time": 3.5,
        "conversation_flow": 80.0,
        "milestones_reached": ["first-reflection"],
    }
    return [
        ("session_create", lambda: services.session_create(
            access=access, client_label="c", actor=ACTOR, start_time=NOW - timedelta(days=3))),
        ("session_update", lambda: services.session_update(session=latest, actor=ACTOR, progress=99.0)),
        ("progress_record", lambda: services.progress_record(
            session=latest, author=world.therapist, metrics=metrics, feedback=None, actor=ACTOR)),
        ("snapshots_record", lambda: services.snapshots_record(
            session=latest, snapshots=[(NOW - timedelta(days=1), 77.0)], actor=ACTOR)),
        ("skill_scores_record", lambda: services.skill_scores_record(
            session=latest, scores={"Empathy": 91.0, "Reflection": 40.0}, actor=ACTOR)),
    ]  # fmt: skip


@pytest.mark.parametrize("write", ["session_create", "session_update", "progress_record", "snapshots_record",
                                   "skill_scores_record"])  # fmt: skip
def test_each_write_service_makes_the_next_read_fresh(world, history, clock, write):
    before, _ = cached(world.therapist, history[-1])
    assert cached(world.therapist, history[-1])[0] == before  # now cached
    dict(_write_each_way(world, history))[write]()
    after, _ = cached(world.therapist, history[-1])
    assert after == fresh(world.therapist, history[-1])
    assert after != before  # the write changed the body: a stale entry would have been served


def test_posting_analytics_switches_to_them_at_once(world, history, clock):
    before, _ = cached(world.therapist, history[-1])
    data = {
        "session_metrics": [],
        "skill_progress": [],
        "summary_stats": [{"label": "Posted", "value": 1.0, "trend": None}],
    }
    services.analytics_record(session=history[-1], data=data, actor=ACTOR)
    after, _ = cached(world.therapist, history[-1])
    assert b'"source":"posted"' in after.replace(b" ", b"")
    assert after != before


def test_a_write_that_rolls_back_keeps_the_entry_and_the_body(world, history, clock):
    before, _ = cached(world.therapist, history[-1])
    token = AnalyticsGeneration.objects.get(therapist=world.therapist).token
    with pytest.raises(RuntimeError), transaction.atomic():
        services.session_update(session=history[-1], actor=ACTOR, progress=98.0)
        raise RuntimeError("rolled back")
    assert AnalyticsGeneration.objects.get(therapist=world.therapist).token == token
    assert cached(world.therapist, history[-1])[0] == before == fresh(world.therapist, history[-1])


def test_the_generation_is_replaced_in_the_writes_transaction(world, history):
    token = AnalyticsGeneration.objects.get(therapist=world.therapist).token
    with transaction.atomic():
        services.snapshots_record(session=history[-1], snapshots=[(NOW, 1.0)], actor=ACTOR)
        inside = AnalyticsGeneration.objects.get(therapist=world.therapist).token
    assert inside != token
    # Posting snapshots the session already has changes nothing, and keeps the generation.
    services.snapshots_record(session=history[-1], snapshots=[(NOW, 1.0)], actor=ACTOR)
    assert AnalyticsGeneration.objects.get(therapist=world.therapist).token == inside


def test_the_range_moving_past_a_session_is_never_served_stale(world, history, clock):
    """Read at many instants just before and after each boundary where a session leaves the range or the
    previous period: the answer is always the fresh one, and the cache is used where it may be."""
    session = history[-1]
    starts = [s.start_time for s in history]
    instants = {NOW}
    for start in starts:
        for edge in (start + YEAR, start + 2 * YEAR):  # leaves the range; leaves the previous period
            if NOW <= edge <= NOW + timedelta(days=400):
                instants.update({edge - timedelta(microseconds=1), edge, edge + timedelta(microseconds=1)})
    hits = 0
    for instant in sorted(instants):
        clock["now"] = instant
        body, queries = cached(world.therapist, session)
        assert body == fresh(world.therapist, session), instant
        hits += queries <= 6
    assert hits >= 3  # an instant just inside a boundary is served from the cache


def test_valid_until_is_the_first_instant_the_range_drops_a_row(world, history):
    session = history[-1]
    since = NOW - YEAR
    in_range = min(s.start_time for s in history if s.start_time >= since)
    read = min(s.start_time for s in history if s.start_time >= since - YEAR)
    assert aggregates.derived_analytics_valid_until(session, since, NOW) == min(in_range + YEAR, read + 2 * YEAR)
    assert aggregates.derived_analytics_valid_until(session, None, NOW) is None


def test_a_clock_that_steps_back_is_not_served_a_later_body(world, history, clock):
    clock["now"] = NOW + timedelta(days=26)  # the 7th session has left the year; valid 4 more days
    later, _ = cached(world.therapist, history[-1])
    assert cached(world.therapist, history[-1])[0] == later  # stored
    clock["now"] = NOW
    body, _ = cached(world.therapist, history[-1])
    assert body == fresh(world.therapist, history[-1])
    assert body != later


def test_a_failing_cache_is_a_miss_not_an_error(world, history, clock, monkeypatch, caplog):
    class Broken:
        calls = 0

        def get(self, *args, **kwargs):
            Broken.calls += 1
            raise ConnectionError("cache down")

        set = get

    # The body cache's own handle only: the rate limiter's failure rule is tested on its own.
    monkeypatch.setattr("core.body_cache.cache", Broken())
    body, _ = cached(world.therapist, history[-1])
    assert body == fresh(world.therapist, history[-1])
    assert Broken.calls == 2  # read, then write, both failed
    assert "body cache read failed: ConnectionError" in caplog.text


def test_an_indented_rendering_is_not_cached_and_stays_indented(world, history, clock):
    cached(world.therapist, history[-1])  # the compact body is in the cache
    response = get(world.therapist, history[-1], HTTP_ACCEPT="application/json; indent=2")
    assert response.status_code == 200
    assert b'\n  "' in response.content


def test_no_generation_row_nothing_cached(world, history, clock):
    AnalyticsGeneration.objects.all().delete()
    _, first = cached(world.therapist, history[-1])
    with CaptureQueriesContext(connection) as captured:
        response = get(world.therapist, history[-1])
    assert response.status_code == 200
    assert len(captured) == first  # computed both times
    # Nothing is stored, so the validity (asked only to store) is not queried.
    assert not any("MIN(start_time)" in query["sql"] for query in captured.captured_queries)


@pytest.mark.parametrize("who", ["other_therapist", "outsider_supervisor", "outsider_therapist"])
def test_a_cached_body_is_still_behind_the_access_rule(world, history, clock, who):
    cached(world.therapist, history[-1])
    response = get(getattr(world, who), history[-1])
    assert response.status_code == 404
    assert response.json()["code"] == "SESSION_NOT_FOUND"


def test_a_supervisor_reads_the_same_body_the_therapist_cached(world, history, clock):
    body, _ = cached(world.therapist, history[-1])
    assert cached(world.supervisor, history[-1])[0] == body
