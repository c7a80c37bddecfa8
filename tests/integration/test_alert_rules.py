"""The LoveRescue alert rules at their boundaries (docs/loverescue.md "Alert rules"), through the hooks
client_data calls after each write, and who becomes a recipient of each alert."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db import transaction

from audit.models import AuditEvent
from core.time import utc_now
from integration import analytics
from integration.models import (
    ActivityEntry,
    Alert,
    AlertRecipient,
    Assessment,
    CheckIn,
    CourseProgress,
    JournalEntry,
)
from integration.services import alerts
from integration.services.alerts import rules as alert_rules
from tests.integration.factories import link, make_client, make_therapist

pytestmark = pytest.mark.django_db

D = date(2026, 1, 1)


def day(n: int) -> date:
    return D + timedelta(days=n)


def checkin(client, on: date, mood: int, *, crisis=False) -> list[Alert]:
    row, _ = CheckIn.objects.update_or_create(
        client=client, date=on, defaults={"mood": mood, "closeness": 5, "crisis": crisis}
    )
    return alerts.alerts_on_checkin(checkin=row)


def activity(client, on: date, name="love_map_quiz") -> list[Alert]:
    row = ActivityEntry.objects.create(client=client, date=on, activity=name)
    return alerts.alerts_on_activity(activity=row)


def risk_alerts(client):
    return list(Alert.objects.filter(client=client, rule="risk_mood").order_by("episode_key"))


@pytest.fixture
def client_():
    client = make_client()
    link(make_therapist(), client, "STANDARD")
    return client


# --- RISK: baseline and runs --------------------------------------------------------------------------


def seed_baseline(client, first: int, count: int, moods=(7, 9)) -> None:
    for i in range(count):
        checkin(client, day(first + i), moods[i % len(moods)])


def test_seven_baseline_checkins_and_five_low_days_make_one_risk_alert(client_):
    seed_baseline(client_, 0, 7)  # days 0-6: 7,9,7,9,7,9,7
    for n in range(7, 11):
        assert checkin(client_, day(n), 3) == []  # 4 consecutive days below: nothing yet
    created = checkin(client_, day(11), 3)

    assert len(created) == 1
    alert = created[0]
    assert (alert.alert_type, alert.severity, alert.required_level) == ("RISK", "HIGH", "STANDARD")
    assert alert.episode_key == day(7).isoformat()
    assert alert.message == "Mood has dropped 2+ SD below baseline for 5 consecutive days"
    assert alert.metadata == {"moodBaseline": 7.9, "currentMood": 3, "daysBelow": 5}
    assert alert.resolved_at is None
    assert AuditEvent.objects.filter(action="integration.alert_created", subject_id=str(client_.pk)).count() == 1


def test_six_baseline_checkins_are_not_a_baseline(client_):
    seed_baseline(client_, 1, 6)  # days 1-6 only
    for n in range(7, 12):
        assert checkin(client_, day(n), 3) == []
    # Day 7 has no baseline; day 8 starts a run under a baseline that includes day 7: 4 days, no alert.
    assert risk_alerts(client_) == []


def test_a_sixth_and_tenth_low_day_do_not_repeat_the_alert(client_):
    seed_baseline(client_, 0, 7)
    for n in range(7, 12):
        checkin(client_, day(n), 3)
    for n in range(12, 17):
        assert checkin(client_, day(n), 2) == []
    [alert] = risk_alerts(client_)
    assert alert.metadata["daysBelow"] == 5 and alert.resolved_at is None


def test_recovery_resolves_and_a_later_run_is_a_new_episode(client_):
    seed_baseline(client_, 0, 7)
    for n in range(7, 12):
        checkin(client_, day(n), 3)
    assert checkin(client_, day(12), 8) == []  # no longer below: the episode closes
    [first] = risk_alerts(client_)
    assert first.resolved_at is not None

    seed_baseline(client_, 13, 30)  # a month of normal mood: the old run leaves the baseline window
    for n in range(43, 47):
        assert checkin(client_, day(n), 3) == []
    [second] = checkin(client_, day(47), 3)

    assert [a.episode_key for a in risk_alerts(client_)] == [day(7).isoformat(), day(43).isoformat()]
    assert second.resolved_at is None and second.metadata["moodBaseline"] == 8.0


def test_exactly_two_sd_below_counts(client_):
    seed_baseline(client_, 0, 8, moods=(6, 8))  # mean 7, SD 1: threshold exactly 5
    for n in range(8, 13):
        checkin(client_, day(n), 5)
    [alert] = risk_alerts(client_)
    assert alert.metadata == {"moodBaseline": 7.0, "currentMood": 5, "daysBelow": 5}


def test_just_above_two_sd_does_not_count(client_):
    seed_baseline(client_, 0, 8, moods=(6, 8))
    for n in range(8, 20):
        checkin(client_, day(n), 6)
    assert risk_alerts(client_) == []


def test_a_flat_baseline_uses_the_minimum_sd(client_):
    seed_baseline(client_, 0, 7, moods=(7,))  # SD 0 -> MIN_SD 0.5: threshold 6
    for n in range(7, 12):
        checkin(client_, day(n), 6)
    [alert] = risk_alerts(client_)
    assert alert.metadata["moodBaseline"] == 7.0


def test_baseline_is_the_30_days_before_the_run(client_):
    other = make_client()
    # Run starts on day 40. client_: one baseline check-in on day 9 (31 days before): outside.
    # other: the same check-in on day 10 (30 days before): inside.
    for client, extra in ((client_, 9), (other, 10)):
        checkin(client, day(extra), 8)
        seed_baseline(client, 34, 6, moods=(8,))
        for n in range(40, 45):
            checkin(client, day(n), 3)
    assert risk_alerts(client_) == []
    assert len(risk_alerts(other)) == 1


def test_a_missing_day_breaks_the_run(client_):
    seed_baseline(client_, 0, 7)
    for n in (7, 8, 9, 10, 12):
        checkin(client_, day(n), 3)
    assert risk_alerts(client_) == []


def test_a_backfilled_day_completing_a_run_alerts_once(client_):
    seed_baseline(client_, 0, 7)
    for n in (7, 8, 10, 11):
        checkin(client_, day(n), 3)
    [alert] = checkin(client_, day(9), 3)
    assert alert.episode_key == day(7).isoformat()
    assert checkin(client_, day(11), 2) == []  # the same run again
    assert len(risk_alerts(client_)) == 1


def test_mood_runs_are_pure_and_deterministic():
    rows = [(day(n), 8 if n % 2 else 6) for n in range(8)] + [(day(n), 5) for n in range(8, 14)]
    runs = analytics.mood_runs(reversed(rows))
    assert [(r.start, r.end, r.length) for r in runs] == [(day(8), day(13), 6)]
    assert runs[0].baseline.mean == 7.0 and runs[0].baseline.sd == 1.0 and runs[0].baseline.threshold == 5.0
    assert analytics.mood_runs(rows) == runs


# --- CRISIS ---------------------------------------------------------------------------------------------


def test_crisis_checkin_alerts_once_per_date(client_):
    [alert] = checkin(client_, day(0), 4, crisis=True)
    assert (alert.alert_type, alert.severity, alert.rule) == ("CRISIS", "CRITICAL", "crisis_checkin")
    assert alert.message == "Crisis pathway triggered — safety plan activation recommended"
    assert alert.metadata == {"source": "self_report"}  # as a journal crisis's: the source is not told
    assert checkin(client_, day(0), 3, crisis=True) == []  # the day's check-in replaced
    assert checkin(client_, day(1), 3) == []
    assert len(checkin(client_, day(2), 3, crisis=True)) == 1


@pytest.mark.parametrize("hidden", [False, True])
def test_crisis_journal_never_reveals_the_entry(client_, hidden):
    secret = "I wrote something private about my partner"
    written = utc_now()
    entry = JournalEntry.objects.create(
        client=client_, text=secret, therapist_hidden=hidden, crisis=True, created_at=written
    )
    quiet = JournalEntry.objects.create(client=client_, text="fine", therapist_hidden=False, created_at=written)
    batch = written + timedelta(minutes=2)
    [alert] = alerts.alerts_on_journal_crises(now=batch)
    assert alert.metadata == {"source": "self_report"}  # the same for hidden and visible entries
    assert secret not in alert.message and "private" not in str(alert.metadata)
    assert alert.created_at == batch and str(entry.pk) not in alert.episode_key  # nothing of the entry
    assert alerts.alerts_on_journal_crises(now=batch) == []
    quiet.refresh_from_db()
    assert quiet.crisis_handled_at is None


# --- STAGNATION -----------------------------------------------------------------------------------------


def stagnation(client):
    return list(Alert.objects.filter(client=client, rule="stagnation").order_by("created_at"))


def test_stagnation_after_seven_days_once_per_episode(client_):
    activity(client_, day(0))
    assert alerts.alerts_evaluate_daily(today=day(6)) == 0
    assert alerts.alerts_evaluate_daily(today=day(7)) == 1
    [alert] = stagnation(client_)
    assert (alert.alert_type, alert.severity, alert.required_level) == ("STAGNATION", "MEDIUM", "BASIC")
    assert alert.message == "No activity for 7 days"
    assert alert.metadata == {"daysInactive": 7, "lastActivity": day(0).isoformat()}
    assert alert.episode_key == day(0).isoformat()
    for n in range(8, 12):  # still inactive: no fresh copy
        assert alerts.alerts_evaluate_daily(today=day(n)) == 0

    activity(client_, day(12))
    alert.refresh_from_db()
    assert alert.resolved_at is not None
    assert alerts.alerts_evaluate_daily(today=day(18)) == 0
    assert alerts.alerts_evaluate_daily(today=day(19)) == 1
    assert [a.episode_key for a in stagnation(client_)] == [day(0).isoformat(), day(12).isoformat()]


def test_stagnation_without_any_activity_counts_from_the_start(client_):
    start = client_.created_at.date()
    assert alerts.alerts_evaluate_daily(today=start + timedelta(days=6)) == 0
    assert alerts.alerts_evaluate_daily(today=start + timedelta(days=7)) == 1
    [alert] = stagnation(client_)
    assert alert.episode_key == f"start:{start.isoformat()}"
    assert alert.metadata == {"daysInactive": 7, "lastActivity": None}


def test_stagnation_skips_unlinked_clients_and_completed_courses(client_):
    unlinked = make_client()
    revoked = make_client()
    link(make_therapist(), revoked, "FULL", revoked=True)
    finished = make_client()
    link(make_therapist(), finished, "BASIC")
    CourseProgress.objects.create(client=finished, current_week=12, is_active=False, completed_at=utc_now())
    for client in (client_, unlinked, revoked, finished):
        ActivityEntry.objects.create(client=client, date=day(0), activity="x")

    assert alerts.alerts_evaluate_daily(today=day(30)) == 1
    assert Alert.objects.filter(rule="stagnation").get().client_id == client_.pk


# --- MILESTONE ------------------------------------------------------------------------------------------


def test_streak_milestones_at_exactly_7_30_90_days_once_each(client_):
    created_on = {}
    for n in range(95):
        for alert in activity(client_, day(n)):
            created_on[alert.metadata["streakDays"]] = n
        if n % 10 == 0:
            activity(client_, day(n), "second_activity_same_day")
    assert created_on == {7: 6, 30: 29, 90: 89}
    keys = sorted(Alert.objects.filter(client=client_, rule="milestone_streak").values_list("episode_key", flat=True))
    assert keys == sorted(f"streak:{n}:{day(0).isoformat()}" for n in (7, 30, 90))
    milestone = Alert.objects.get(client=client_, episode_key=f"streak:7:{day(0).isoformat()}")
    assert milestone.metadata == {"milestone": "streak", "streakDays": 7, "streakStart": day(0).isoformat()}
    assert (milestone.alert_type, milestone.severity) == ("MILESTONE", "LOW")


def test_a_streak_of_six_is_nothing_and_a_backfilled_start_does_not_repeat(client_):
    for n in range(1, 7):
        assert activity(client_, day(n)) == []
    [seven] = activity(client_, day(7))
    assert seven.episode_key == f"streak:7:{day(1).isoformat()}"
    assert activity(client_, day(0)) == []  # backfilled: the streak now starts a day earlier
    assert Alert.objects.filter(rule="milestone_streak").count() == 1


def test_week_completed_milestone_once_and_the_course(client_):
    [week] = alerts.alerts_on_week_completed(client=client_, week_number=3)
    assert (week.episode_key, week.metadata) == ("week:3", {"milestone": "week_completed", "weekNumber": 3})
    assert week.message == "Course week 3 completed"
    assert alerts.alerts_on_week_completed(client=client_, week_number=3) == []
    last = alerts.alerts_on_week_completed(client=client_, week_number=12)
    assert [a.rule for a in last] == ["milestone_week", "milestone_course"]


def assess(client, type_name, score, n):
    row = Assessment.objects.create(
        client=client, type=type_name, score=score, completed_at=utc_now() - timedelta(days=100 - n)
    )
    return alerts.alerts_on_assessment(assessment=row)


def test_breakthrough_threshold_just_below_and_at(client_):
    assert assess(client_, "relationship_satisfaction", {"score": 50.0}, 0) == []  # nothing to compare
    assert assess(client_, "relationship_satisfaction", {"score": 64.9}, 1) == []  # +14.9
    assert assess(client_, "relationship_satisfaction", {"score": 50.0}, 2) == []
    [alert] = assess(client_, "relationship_satisfaction", {"score": 65.0}, 3)  # +15: breakthrough_at
    assert alert.metadata == {
        "milestone": "assessment_breakthrough",
        "assessmentType": "relationship_satisfaction",
        "improvement": 15.0,
    }
    assert alert.episode_key == str(Assessment.objects.latest("completed_at").pk)


def test_attachment_breakthrough_uses_the_catalogue_improvement(client_):
    assess(client_, "attachment", {"style": "anxious", "anxiety": 4.0, "avoidance": 3.0}, 0)
    assert assess(client_, "attachment", {"style": "anxious", "anxiety": 3.6, "avoidance": 2.5}, 1) == []  # 0.9
    assess(client_, "attachment", {"style": "anxious", "anxiety": 4.0, "avoidance": 3.0}, 2)
    assert len(assess(client_, "attachment", {"style": "secure", "anxiety": 3.5, "avoidance": 2.5}, 3)) == 1  # 1.0
    assess(client_, "love_language", {"primary": "time"}, 4)
    assert assess(client_, "love_language", {"primary": "words"}, 5) == []  # no "better" for this type


def test_a_backdated_assessment_compares_with_the_one_before_it(client_):
    assess(client_, "communication", {"score": 80.0}, 10)
    assess(client_, "communication", {"score": 40.0}, 0)
    # Completed between the two: compared with 40 (the one before it), not with the newer 80.
    assert len(assess(client_, "communication", {"score": 60.0}, 5)) == 1


# --- Recipients ------------------------------------------------------------------------------------------


def test_recipients_are_the_therapists_at_the_required_level():
    client = make_client()
    basic, standard, full = make_therapist("B"), make_therapist("S"), make_therapist("F")
    revoked, pending, inactive = make_therapist("R"), make_therapist("P"), make_therapist("I", active=False)
    link(basic, client, "BASIC")
    link(standard, client, "STANDARD")
    link(full, client, "FULL")
    link(revoked, client, "FULL", revoked=True)
    link(pending, client, "FULL", consent=False)
    link(inactive, client, "FULL")
    make_therapist("U")  # unlinked

    def recipients(alert):
        return set(AlertRecipient.objects.filter(alert=alert).values_list("therapist__first_name", flat=True))

    [crisis] = checkin(client, day(0), 3, crisis=True)
    [milestone] = alerts.alerts_on_week_completed(client=client, week_number=1)
    assert recipients(crisis) == {"S", "F"}
    assert recipients(milestone) == {"B", "S", "F"}
    audit = AuditEvent.objects.get(action="integration.alert_created", metadata__alert_id=str(crisis.id))
    assert audit.metadata == {
        "alert_id": str(crisis.id),
        "alert_type": "CRISIS",
        "severity": "CRITICAL",
        "rule": "crisis_checkin",
        "recipients": 2,
    }


def test_a_concurrently_created_episode_is_not_duplicated(client_, monkeypatch):
    [alert] = checkin(client_, day(0), 3, crisis=True)
    # The other transaction's insert won between our check and our insert.
    monkeypatch.setattr(alert_rules, "_episode_exists", lambda **kwargs: False)
    with transaction.atomic():
        assert checkin(client_, day(0), 3, crisis=True) == []
        assert Alert.objects.filter(client=client_).count() == 1  # the transaction is still usable
    assert AlertRecipient.objects.filter(alert__client=client_).count() == 1
    assert Alert.objects.get(client=client_).pk == alert.pk
