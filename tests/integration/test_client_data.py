"""integration.services.client_data called directly: validation, atomicity, hooks, audit, consent."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest

from audit.models import AuditEvent
from core.actors import Actor
from core.domain import NotFound
from core.time import utc_now
from integration import catalogue
from integration.models import (
    ActivityEntry,
    Assessment,
    CheckIn,
    CourseProgress,
    JournalEntry,
    RatioEntry,
    WeeklyStrategy,
)
from integration.services import alerts as alerts_service
from integration.services import client_data as cd
from integration.services.assignments import task_assign
from tests.integration.factories import link, make_client, make_therapist

pytestmark = pytest.mark.django_db

TODAY = date(2026, 2, 12)


@pytest.fixture
def jane():
    return make_client("Jane", "Doe")


@pytest.fixture
def spy(monkeypatch):
    """Records every alert hook call (and still runs the real rules)."""
    calls: list[tuple[str, dict]] = []
    for name in (
        "alerts_on_checkin",
        "alerts_on_activity",
        "alerts_on_assessment",
        "alerts_on_week_completed",
    ):
        real = getattr(alerts_service, name)

        def hook(*, _name=name, _real=real, **kwargs):
            calls.append((_name, kwargs))
            return _real(**kwargs)

        monkeypatch.setattr(alerts_service, name, hook)
    return calls


def test_checkin_calls_the_alert_hook_with_the_saved_row(jane, spy):
    checkin, created = cd.checkin_record(
        client=jane, actor=Actor.client(jane.pk), date=TODAY, mood=4, closeness=6, today=TODAY
    )
    assert created and checkin.pk
    assert spy == [("alerts_on_checkin", {"checkin": checkin})]
    replaced, created = cd.checkin_record(
        client=jane, actor=Actor.client(jane.pk), date=TODAY, mood=8, closeness=8, crisis=True, today=TODAY
    )
    assert not created and replaced.pk == checkin.pk and replaced.crisis
    assert CheckIn.objects.count() == 1 and len(spy) == 2


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"mood": True}, "mood must be an integer from 1 to 10"),
        ({"mood": 10.0}, "mood"),
        ({"closeness": 11}, "closeness"),
        ({"crisis": "true"}, "crisis must be true or false"),
        ({"date": "2026-02-12"}, "date must be a date"),
        ({"date": datetime(2026, 2, 12, 10, 0)}, "date must be a date"),
        ({"date": TODAY + timedelta(days=2)}, "must not be in the future"),
        ({"date": TODAY - timedelta(days=366)}, "within the last 365 days"),
    ],
)
def test_checkin_invalid_input(jane, kwargs, message):
    args = {
        "client": jane,
        "actor": Actor.client(jane.pk),
        "date": TODAY,
        "mood": 5,
        "closeness": 5,
        "today": TODAY,
        **kwargs,
    }
    with pytest.raises(cd.ClientDataInvalid, match=message):
        cd.checkin_record(**args)
    assert not CheckIn.objects.exists() and not AuditEvent.objects.exists()


def test_a_failing_alert_rule_rolls_the_write_back(jane, monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("rule failed")

    monkeypatch.setattr(alerts_service, "alerts_on_checkin", boom)
    with pytest.raises(RuntimeError):
        cd.checkin_record(client=jane, actor=Actor.client(jane.pk), date=TODAY, mood=5, closeness=5, today=TODAY)
    assert not CheckIn.objects.exists()
    assert not AuditEvent.objects.filter(action="integration.checkin_recorded").exists()


def test_ratio_record_upserts(jane):
    entry, created = cd.ratio_record(
        client=jane, actor=Actor.client(jane.pk), date=TODAY, positive=5, negative=1, today=TODAY
    )
    assert created
    again, created = cd.ratio_record(
        client=jane, actor=Actor.client(jane.pk), date=TODAY, positive=6, negative=2, today=TODAY
    )
    assert not created and again.pk == entry.pk and RatioEntry.objects.get().positive == 6
    with pytest.raises(cd.ClientDataInvalid, match="negative"):
        cd.ratio_record(client=jane, actor=Actor.client(jane.pk), date=TODAY, positive=1, negative=1001, today=TODAY)


def test_activity_hooks_and_week_completion(jane, spy):
    for offset in range(6):
        cd.activity_record(
            client=jane,
            actor=Actor.client(jane.pk),
            date=TODAY - timedelta(days=offset),
            activity="love-maps",
            week_number=1,
            today=TODAY,
        )
    assert [name for name, _ in spy] == ["alerts_on_activity"] * 6
    spy.clear()
    entry = cd.activity_record(
        client=jane,
        actor=Actor.client(jane.pk),
        date=TODAY - timedelta(days=6),
        activity="love-maps",
        week_number=1,
        today=TODAY,
    ).entry
    assert spy[0] == ("alerts_on_week_completed", {"client": jane, "week_number": 1})
    assert spy[1] == ("alerts_on_activity", {"activity": entry})
    course = CourseProgress.objects.get(client=jane)
    assert course.current_week == 2 and course.is_active
    strategy = WeeklyStrategy.objects.get(client=jane, week_number=1)
    assert strategy.completed_days == catalogue.DAYS_PER_WEEK and strategy.completed_at is not None
    event = AuditEvent.objects.filter(action="integration.activity_recorded").latest("pk")
    assert event.metadata["week_completed"] is True and event.metadata["week_number"] == 1


def test_activity_without_week_leaves_the_course_alone(jane, spy):
    entry = cd.activity_record(client=jane, actor=Actor.client(jane.pk), date=TODAY, activity="walk", today=TODAY).entry
    assert entry.week_number is None and not CourseProgress.objects.exists()
    assert spy == [("alerts_on_activity", {"activity": entry})]


def test_wrong_week_is_refused_without_writing(jane):
    with pytest.raises(cd.ClientDataInvalid, match=r"current course week \(1\)"):
        cd.activity_record(
            client=jane, actor=Actor.client(jane.pk), date=TODAY, activity="x", week_number=2, today=TODAY
        )
    assert not ActivityEntry.objects.exists()
    # The course row created to answer the question is rolled back with the rest.
    assert not CourseProgress.objects.exists()


def test_assessment_record(jane, spy):
    completed_at = utc_now() - timedelta(days=3)
    assessment = cd.assessment_record(
        client=jane,
        actor=Actor.client(jane.pk),
        type="communication",
        score={"score": 55, "style": "avoiding"},
        completed_at=completed_at,
    )
    assert assessment.score == {"score": 55.0, "style": "avoiding"} and assessment.completed_at == completed_at
    assert spy == [("alerts_on_assessment", {"assessment": assessment})]
    event = AuditEvent.objects.get(action="integration.assessment_recorded")
    assert event.metadata == {"assessment_id": assessment.pk, "type": "communication"}
    with pytest.raises(cd.ClientDataInvalid, match="score.style"):
        cd.assessment_record(
            client=jane, actor=Actor.client(jane.pk), type="communication", score={"score": 5, "style": "shouting"}
        )
    with pytest.raises(cd.ClientDataInvalid, match="future"):
        cd.assessment_record(
            client=jane,
            actor=Actor.client(jane.pk),
            type="conflict_resolution",
            score={"score": 5},
            completed_at=utc_now() + timedelta(hours=1),
        )
    assert Assessment.objects.count() == 1


def test_journal_record(jane, spy, django_capture_on_commit_callbacks, monkeypatch):
    queued = []
    monkeypatch.setattr(cd, "_enqueue_journal_crisis_batch", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        cd.journal_record(client=jane, actor=Actor.client(jane.pk), text="secret words", therapist_hidden=True)
    assert spy == [] and queued == []  # no crisis: no alert rule, no batch
    with django_capture_on_commit_callbacks(execute=True):
        cd.journal_record(client=jane, actor=Actor.client(jane.pk), text="help", therapist_hidden=True, crisis=True)
    # A crisis is not alerted by the write: the journal crisis batch is asked for, after commit.
    assert spy == [] and queued == [jane.pk] and not jane.alerts.exists()
    assert [entry.text for entry in JournalEntry.objects.order_by("created_at")] == ["secret words", "help"]
    for bad in ("", "   ", "x" * 20_001):
        with pytest.raises(cd.ClientDataInvalid, match="text"):
            cd.journal_record(client=jane, actor=Actor.client(jane.pk), text=bad, therapist_hidden=False)
    with pytest.raises(cd.ClientDataInvalid, match="therapistHidden"):
        cd.journal_record(client=jane, actor=Actor.client(jane.pk), text="hi", therapist_hidden=None)


def test_audit_metadata_never_carries_phi(jane):
    cd.checkin_record(client=jane, actor=Actor.client(jane.pk), date=TODAY, mood=3, closeness=9, today=TODAY)
    cd.journal_record(client=jane, actor=Actor.client(jane.pk), text="my partner Sam shouted", therapist_hidden=False)
    cd.assessment_record(
        client=jane,
        actor=Actor.client(jane.pk),
        type="relationship_satisfaction",
        score={"score": 73.5},
        responses={"q": "Sam"},
    )
    blob = json.dumps([e.metadata for e in AuditEvent.objects.all()])
    assert "Sam" not in blob and "shouted" not in blob and "73.5" not in blob and '"mood"' not in blob


# --- Consent ---------------------------------------------------------------------------------------


@pytest.fixture
def published(monkeypatch):
    sent = []
    monkeypatch.setattr(cd, "publish_to_partners", lambda **kwargs: sent.append(kwargs))
    return sent


def test_revoke_publishes_once_without_phi(jane, published):
    therapist = make_therapist()
    granted = link(therapist, jane, "FULL")
    updated = cd.link_update(client=jane, actor=Actor.client(jane.pk), link_id=granted.pk, consent="revoked")
    assert updated.consent_revoked_at is not None and not updated.has_consent
    assert len(published) == 1
    sent = published[0]
    assert sent["event_type"] == "consent.revoked" and sent["therapist"] == therapist
    assert sent["payload"] == {
        "event": "consent.revoked",
        "clientId": str(jane.pk),
        "therapistId": str(therapist.pk),
        "linkId": str(granted.pk),
        "revokedAt": sent["payload"]["revokedAt"],
    }
    # Revoking again changes nothing: no second event, no second audit row.
    cd.link_update(client=jane, actor=Actor.client(jane.pk), link_id=granted.pk, consent="revoked")
    assert len(published) == 1
    assert AuditEvent.objects.filter(action="integration.consent_revoked").count() == 1


def test_revoking_a_pending_link_publishes_nothing(jane, published):
    pending = link(make_therapist(), jane, "BASIC", consent=False)
    updated = cd.link_update(client=jane, actor=Actor.client(jane.pk), link_id=pending.pk, consent="revoked")
    assert cd.consent_state(updated) == "revoked" and published == []
    assert AuditEvent.objects.get(action="integration.consent_revoked").metadata["was_in_force"] is False


def test_same_level_is_not_a_change(jane, published):
    granted = link(make_therapist(), jane, "STANDARD")
    cd.link_update(
        client=jane, actor=Actor.client(jane.pk), link_id=granted.pk, permission_level="STANDARD", consent="granted"
    )
    assert not AuditEvent.objects.filter(action__startswith="integration.").exists()


def test_link_update_refuses_bad_input_and_other_clients_links(jane):
    granted = link(make_therapist(), jane, "STANDARD")
    with pytest.raises(cd.ClientDataInvalid, match="required"):
        cd.link_update(client=jane, actor=Actor.client(jane.pk), link_id=granted.pk)
    with pytest.raises(cd.ClientDataInvalid, match="permissionLevel"):
        cd.link_update(client=jane, actor=Actor.client(jane.pk), link_id=granted.pk, permission_level="GOD")
    with pytest.raises(NotFound, match="Therapist link not found"):
        cd.link_update(
            client=(other := make_client()), link_id=granted.pk, consent="revoked", actor=Actor.client(other.pk)
        )
    granted.refresh_from_db()
    assert granted.has_consent


def test_task_complete_is_idempotent_and_scoped(jane):
    therapist = make_therapist()
    task = task_assign(
        therapist=therapist, client=jane, partner=None, description="Do it", actor=Actor.therapist(therapist.pk)
    )
    first = cd.task_complete(client=jane, actor=Actor.client(jane.pk), task_id=task.pk)
    second = cd.task_complete(client=jane, actor=Actor.client(jane.pk), task_id=task.pk)
    assert first.status == "completed" and second.completed_at == first.completed_at
    with pytest.raises(NotFound, match="Task not found"):
        cd.task_complete(client=(other := make_client()), task_id=task.pk, actor=Actor.client(other.pk))
