"""Session-prep reports (docs/loverescue.md "Session prep reports"): window, content, persistence."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from audit.models import AuditEvent
from core.actors import Actor
from core.rounding import round_half_up
from integration import analytics
from integration.models import (
    ActivityEntry,
    Alert,
    Assessment,
    CheckIn,
    JournalEntry,
    RatioEntry,
    SessionPrepReport,
)
from integration.services import alerts
from integration.services.reports import ReportInvalid, session_prep_report_generate
from tests.integration.factories import link, make_client, make_partner, make_therapist

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 2, 12, 15, 0, tzinfo=UTC)
SECRET = "a very private journal sentence"
ACTOR = Actor.system("integration.reports")


def d(month: int, day: int) -> date:
    return date(2026, month, day)


def at(month: int, day: int, hour: int = 12) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


@pytest.fixture
def world():
    therapist = make_therapist()
    client = make_client("Jane", "Doe")
    link(therapist, client, "STANDARD")
    # Activities: 5 distinct days in the default window (Feb 6-12), one outside on each side.
    for day in (5, 6, 7, 9, 10, 12):
        ActivityEntry.objects.create(client=client, date=d(2, day), activity="love_map_quiz")
    ActivityEntry.objects.create(client=client, date=d(2, 9), activity="open_ended_questions")
    ActivityEntry.objects.create(client=client, date=d(2, 13), activity="too_late")
    for day, mood in zip(range(6, 13), (5, 5, 6, 6, 7, 7, 8), strict=True):
        CheckIn.objects.create(client=client, date=d(2, day), mood=mood, closeness=5)
    CheckIn.objects.create(client=client, date=d(2, 5), mood=1, closeness=1)  # before the window
    RatioEntry.objects.create(client=client, date=d(2, 5), positive=16, negative=5)  # before: 3.2
    RatioEntry.objects.create(client=client, date=d(2, 8), positive=14, negative=3)
    RatioEntry.objects.create(client=client, date=d(2, 11), positive=10, negative=2)  # during: 24/5 = 4.8
    attachment_before = {"style": "anxious", "anxiety": 4.2, "avoidance": 2.1}
    Assessment.objects.create(client=client, type="attachment", score=attachment_before, completed_at=at(1, 20))
    Assessment.objects.create(
        client=client,
        type="attachment",
        score={"style": "anxious", "anxiety": 3.8, "avoidance": 2.1},
        completed_at=at(2, 8),
    )
    Assessment.objects.create(
        client=client,
        type="attachment",
        score={"style": "secure", "anxiety": 3.0, "avoidance": 2.0},
        completed_at=at(2, 10),
    )
    Assessment.objects.create(client=client, type="communication", score={"score": 60.0}, completed_at=at(1, 2))
    Assessment.objects.create(
        client=client, type="relationship_satisfaction", score={"score": 70.0}, completed_at=at(2, 11)
    )
    JournalEntry.objects.create(client=client, text=SECRET, therapist_hidden=True, crisis=True, created_at=at(2, 9))
    row = CheckIn.objects.get(client=client, date=d(2, 9))
    row.crisis = True
    row.save()
    [flag] = alerts.alerts_on_checkin(checkin=row)
    Alert.objects.filter(pk=flag.pk).update(created_at=at(2, 9))
    old = Alert.objects.create(
        client=client,
        alert_type="CRISIS",
        severity="CRITICAL",
        rule="crisis_checkin",
        episode_key="old",
        required_level="STANDARD",
        message="x",
        metadata={"source": "self_report"},
        created_at=at(2, 1),
    )
    return therapist, client, flag, old


def test_default_window_is_the_last_seven_days(world):
    therapist, client, flag, _ = world

    report = session_prep_report_generate(
        therapist=therapist, client=client, last_session_date=None, now=NOW, actor=ACTOR
    )

    content = report.content
    assert report.report_date == NOW and report.last_session_date == NOW - timedelta(days=7)
    assert list(content) == [
        "activitiesCompleted",
        "assessmentChanges",
        "moodTrends",
        "crisisFlags",
        "generatedSummary",
        "expertInsights",
    ]
    assert content["activitiesCompleted"] == [
        {"date": "2026-02-06", "activity": "love_map_quiz"},
        {"date": "2026-02-07", "activity": "love_map_quiz"},
        {"date": "2026-02-09", "activity": "love_map_quiz"},
        {"date": "2026-02-09", "activity": "open_ended_questions"},
        {"date": "2026-02-10", "activity": "love_map_quiz"},
        {"date": "2026-02-12", "activity": "love_map_quiz"},
    ]
    assert content["assessmentChanges"] == {
        "attachment": {
            "before": {"style": "anxious", "anxiety": 4.2, "avoidance": 2.1},
            "after": {"style": "secure", "anxiety": 3.0, "avoidance": 2.0},
        },
        "relationship_satisfaction": {"before": None, "after": {"score": 70.0}},
    }
    assert content["moodTrends"] == {"average": 6.3, "trend": "improving"}
    assert content["crisisFlags"] == [{"date": "2026-02-09", "alertId": str(flag.id), "source": "self_report"}]
    assert content["generatedSummary"] == (
        "Since last session, client completed 5/7 daily activities, average mood 6.3 (improving), 1 crisis flag."
    )
    assert content["expertInsights"] == [
        {"expert": "Gottman", "insight": "5:1 ratio improved from 3.2 to 4.8 (target 5.0)"},
        {"expert": "Attachment", "insight": "Attachment style shifted from anxious to secure"},
    ]


def test_report_is_persisted_audited_and_free_of_journal_text(world):
    therapist, client, _, _ = world
    report = session_prep_report_generate(
        therapist=therapist, client=client, last_session_date=None, now=NOW, actor=ACTOR
    )

    stored = SessionPrepReport.objects.get(pk=report.pk)
    assert stored.content == report.content and stored.therapist_id == therapist.pk
    assert SECRET not in json.dumps(stored.content) and "journal" not in json.dumps(stored.content)
    event = AuditEvent.objects.get(action="integration.session_prep_generated")
    assert event.subject_id == str(client.pk)
    assert event.metadata == {"report_id": str(report.id), "therapist_id": str(therapist.pk)}


def test_explicit_last_session_date_and_then_the_previous_report(world):
    therapist, client, flag, old = world
    first = session_prep_report_generate(
        therapist=therapist, client=client, last_session_date=at(1, 29, 15), now=NOW, actor=ACTOR
    )
    assert first.last_session_date == at(1, 29, 15)
    assert [f["alertId"] for f in first.content["crisisFlags"]] == [str(old.id), str(flag.id)]
    assert first.content["generatedSummary"].startswith("Since last session, client completed 6/14 daily activities")
    assert first.content["assessmentChanges"]["attachment"]["before"]["anxiety"] == 4.2

    later = NOW + timedelta(days=3)
    second = session_prep_report_generate(
        therapist=therapist, client=client, last_session_date=None, now=later, actor=ACTOR
    )
    assert second.last_session_date == NOW  # the previous report of this therapist for this client
    assert second.content["activitiesCompleted"] == [{"date": "2026-02-13", "activity": "too_late"}]
    assert second.content["moodTrends"] == {"average": None, "trend": None}
    assert second.content["assessmentChanges"] == {} and second.content["crisisFlags"] == []
    assert second.content["generatedSummary"] == (
        "Since last session, client completed 1/3 daily activities, no mood check-ins, no crisis flags."
    )

    # Another therapist's report does not move this therapist's window.
    other = make_therapist("O")
    link(other, client, "FULL")
    third = session_prep_report_generate(therapist=other, client=client, last_session_date=None, now=later, actor=ACTOR)
    assert third.last_session_date == later - timedelta(days=7)


def test_same_inputs_give_the_same_report(world):
    therapist, client, _, _ = world
    a = session_prep_report_generate(
        therapist=therapist, client=client, last_session_date=at(2, 5, 15), now=NOW, actor=ACTOR
    )
    b = session_prep_report_generate(
        therapist=therapist, client=client, last_session_date=at(2, 5, 15), now=NOW, actor=ACTOR
    )
    assert a.pk != b.pk and a.content == b.content


def test_future_last_session_is_refused(world):
    therapist, client, _, _ = world
    with pytest.raises(ReportInvalid):
        session_prep_report_generate(
            therapist=therapist, client=client, last_session_date=at(2, 13), now=NOW, actor=ACTOR
        )
    assert not SessionPrepReport.objects.exists()


def test_same_day_window_covers_that_day(world):
    therapist, client, _, _ = world
    report = session_prep_report_generate(
        therapist=therapist, client=client, last_session_date=at(2, 12, 9), now=NOW, actor=ACTOR
    )
    assert report.content["generatedSummary"] == (
        "Since last session, client completed 1/1 daily activities, average mood 8.0, no crisis flags."
    )


def test_trend_thresholds():
    assert analytics.trend(0.1) == "improving"
    assert analytics.trend(0.0999) == "stable"
    assert analytics.trend(-0.0999) == "stable"
    assert analytics.trend(-0.1) == "declining"
    assert analytics.mood_trend([(d(1, 1), 5), (d(1, 11), 6)]) == "improving"  # slope 0.1/day
    assert analytics.mood_trend([(d(1, 1), 5), (d(1, 21), 6)]) == "stable"  # 0.05/day
    assert analytics.mood_trend([(d(1, 1), 8), (d(1, 2), 6), (d(1, 3), 4)]) == "declining"
    assert analytics.mood_trend([(d(1, 1), 8)]) is None
    assert round_half_up(6.25, 1) == 6.3 and round_half_up(6.2857, 1) == 6.3


def test_session_prep_through_the_partner_api(client, world):
    therapist, lr_client, _, _ = world
    partner = make_partner(therapists=[therapist])
    response = client.get(
        f"/api/integration/clients/{lr_client.id}/session-prep",
        {"lastSessionDate": "2026-02-05T00:00:00Z"},
        **partner.headers(therapist),
    )
    assert response.status_code == 200, response.content
    body = response.json()["report"]
    assert body["clientId"] == str(lr_client.id) and body["lastSessionDate"].startswith("2026-02-05T00:00:00")
    assert body["moodTrends"]["average"] is not None and body["generatedSummary"].startswith("Since last session")
    assert SECRET not in response.content.decode()
