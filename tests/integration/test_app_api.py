"""The LoveRescue app (client) API, /api/app/...: as the client with a platform token."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from accounts.models import User
from audit.models import AuditEvent
from core.actors import Actor
from core.time import utc_now
from integration import catalogue
from integration.models import (
    ActivityEntry,
    Alert,
    Assessment,
    CheckIn,
    CourseProgress,
    JournalEntry,
    RatioEntry,
    TherapistClientLink,
    TherapistTask,
    WeeklyStrategy,
)
from integration.services import alerts as alerts_service
from integration.services import client_data
from integration.services import reports as reports_service
from integration.services.assignments import task_assign
from tests.integration.factories import link, make_client, make_couple, make_partner, make_therapist
from webhooks.models import Scheme, WebhookEndpoint, WebhookEvent

pytestmark = pytest.mark.django_db

PASSWORD = "client-pass-123!"


@pytest.fixture
def today(monkeypatch):
    """The services' "today", pinned for the test (no midnight luck)."""
    day = utc_now().date()
    monkeypatch.setattr(client_data, "today_utc", lambda: day)
    return day


def platform_token(client, username: str, password: str = PASSWORD) -> str:
    response = client.post(
        "/api/v1/auth/token", {"username": username, "password": password}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


class App:
    """The app, logged in as one client."""

    def __init__(self, http, lr_client):
        self.http = http
        self.client = lr_client
        self.auth = {"HTTP_AUTHORIZATION": f"Bearer {platform_token(http, lr_client.user.username)}"}

    def post(self, path, body=None):
        return self.http.post(f"/api/app/{path}", json.dumps(body or {}), content_type="application/json", **self.auth)

    def patch(self, path, body):
        return self.http.patch(f"/api/app/{path}", json.dumps(body), content_type="application/json", **self.auth)

    def get(self, path):
        return self.http.get(f"/api/app/{path}", **self.auth)


@pytest.fixture
def jane():
    return make_client("Jane", "Doe")


@pytest.fixture
def app(client, jane):
    return App(client, jane)


def assert_bad_request(response, fragment: str = ""):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "BAD_REQUEST"
    assert fragment in body["error"], body


# --- Authentication ------------------------------------------------------------------------------


def test_no_token_is_401_in_the_loverescue_body(client):
    response = client.post("/api/app/checkins", {}, content_type="application/json")
    assert response.status_code == 401
    assert set(response.json()) == {"error", "code"} and response.json()["code"] == "AUTH_FAILED"


def test_a_platform_user_who_is_not_a_client_is_403(client, today):
    User.objects.create_user(username="staffer", password=PASSWORD)
    token = platform_token(client, "staffer")
    response = client.post(
        "/api/app/checkins",
        {"date": today.isoformat(), "mood": 5, "closeness": 5},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 403
    assert response.json() == {"error": "This account is not a LoveRescue app client", "code": "FORBIDDEN"}
    assert not CheckIn.objects.exists()


def test_a_partner_integration_token_is_not_an_app_token(client, jane):
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist])
    response = client.get("/api/app/therapist-links", **partner.headers(therapist))
    assert response.status_code == 401


# --- Check-ins and ratios ------------------------------------------------------------------------


def test_checkin_is_created_then_replaced_for_the_same_date(app, jane, today):
    first = app.post("checkins", {"date": today.isoformat(), "mood": 6, "closeness": 7})
    assert first.status_code == 201, first.content
    body = first.json()
    assert {k: body[k] for k in ("date", "mood", "closeness", "crisis")} == {
        "date": today.isoformat(),
        "mood": 6,
        "closeness": 7,
        "crisis": False,
    }
    assert body["updatedAt"].endswith("Z")

    again = app.post("checkins", {"date": today.isoformat(), "mood": 3, "closeness": 4})
    assert again.status_code == 200
    row = CheckIn.objects.get(client=jane)
    assert (row.mood, row.closeness) == (3, 4)

    events = AuditEvent.objects.filter(action="integration.checkin_recorded", subject_id=str(jane.pk))
    assert [e.metadata["replaced"] for e in events.order_by("pk")] == [False, True]
    for event in events:
        assert event.actor_type == "client" and "mood" not in json.dumps(event.metadata)


@pytest.mark.parametrize(
    "overrides,fragment",
    [
        ({"mood": 0}, "mood"),
        ({"mood": 11}, "mood"),
        ({"closeness": 0}, "closeness"),
        ({"mood": "5"}, "mood"),
        ({"mood": 5.5}, "mood"),
        ({"closeness": None}, "closeness"),
        ({"crisis": "yes"}, "crisis"),
        ({"date": "12/02/2026"}, "date"),
        ({"date": "2026-02-30"}, "date"),
        ({"date": "+2"}, "future"),
        ({"date": "-366"}, "365"),
    ],
)
def test_checkin_validation(app, today, overrides, fragment):
    body = {"date": today.isoformat(), "mood": 5, "closeness": 5}
    body.update(overrides)
    if body["date"] in ("+2", "-366"):
        body["date"] = (today + timedelta(days=int(body["date"]))).isoformat()
    assert_bad_request(app.post("checkins", body), fragment)
    assert not CheckIn.objects.exists()


def test_checkin_date_limits_are_inclusive(app, today):
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert app.post("checkins", {"date": tomorrow, "mood": 5, "closeness": 5}).status_code == 201
    oldest = (today - timedelta(days=365)).isoformat()
    assert app.post("checkins", {"date": oldest, "mood": 5, "closeness": 5}).status_code == 201


def test_crisis_checkin_raises_a_crisis_alert(app, jane, today):
    response = app.post("checkins", {"date": today.isoformat(), "mood": 2, "closeness": 2, "crisis": True})
    assert response.status_code == 201
    assert Alert.objects.filter(client=jane, alert_type="CRISIS").exists()


def test_ratio_upsert_and_bounds(app, jane, today):
    created = app.post("ratios", {"date": today.isoformat(), "positive": 10, "negative": 2})
    assert created.status_code == 201
    assert created.json() == {"date": today.isoformat(), "positive": 10, "negative": 2, "ratio": 5.0}
    replaced = app.post("ratios", {"date": today.isoformat(), "positive": 3, "negative": 0})
    assert replaced.status_code == 200 and replaced.json()["ratio"] is None
    assert RatioEntry.objects.get(client=jane).positive == 3
    assert_bad_request(app.post("ratios", {"date": today.isoformat(), "positive": 1001, "negative": 0}), "positive")
    assert_bad_request(app.post("ratios", {"date": today.isoformat(), "positive": -1, "negative": 0}), "positive")
    assert_bad_request(app.post("ratios", {"date": today.isoformat(), "positive": 1}), "negative")


# --- Activities and the course --------------------------------------------------------------------


def test_activity_without_a_week(app, jane, today):
    response = app.post("activities", {"date": today.isoformat(), "activity": "love_map_quiz"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["activity"] == "love_map_quiz" and body["weekNumber"] is None and body["weeklyStrategy"] is None
    assert ActivityEntry.objects.filter(client=jane).count() == 1
    assert not CourseProgress.objects.filter(client=jane).exists()


@pytest.mark.parametrize("activity", ["", "Love Map!", "a" * 101, "with space", "_leading"])
def test_activity_name_must_be_a_slug(app, today, activity):
    assert_bad_request(app.post("activities", {"date": today.isoformat(), "activity": activity}), "activity")


def test_seven_distinct_days_complete_a_week_and_advance_the_course(app, jane, today, monkeypatch):
    completed = []
    real = alerts_service.alerts_on_week_completed
    monkeypatch.setattr(
        alerts_service,
        "alerts_on_week_completed",
        lambda **kw: completed.append(kw["week_number"]) or real(**kw),
    )
    start = today - timedelta(days=10)
    # The same day twice counts once.
    for offset in (0, 0, 1, 2, 3, 4, 5):
        response = app.post(
            "activities", {"date": (start + timedelta(days=offset)).isoformat(), "activity": "w1", "weekNumber": 1}
        )
        assert response.status_code == 201
    strategy = WeeklyStrategy.objects.get(client=jane, week_number=1)
    assert strategy.completed_days == 6 and strategy.completed_at is None
    assert CourseProgress.objects.get(client=jane).current_week == 1
    assert completed == []

    last = app.post("activities", {"date": (start + timedelta(days=6)).isoformat(), "activity": "w1", "weekNumber": 1})
    body = last.json()
    assert body["weeklyStrategy"]["completedDays"] == 7 and body["weeklyStrategy"]["completedAt"]
    assert body["weeklyStrategy"]["theme"] == catalogue.COURSE_WEEKS[1]
    assert body["course"] == {"currentWeek": 2, "isActive": True, "completedAt": None}
    assert completed == [1]
    assert WeeklyStrategy.objects.get(client=jane, week_number=2).theme == catalogue.COURSE_WEEKS[2]
    assert Alert.objects.filter(client=jane, alert_type="MILESTONE").exists()

    # Week 1 is over: posting to it (or to a future week) is refused.
    week_one = {"date": today.isoformat(), "activity": "w1", "weekNumber": 1}
    assert_bad_request(app.post("activities", week_one), "current course week (2)")
    assert_bad_request(app.post("activities", {"date": today.isoformat(), "activity": "w3", "weekNumber": 3}), "(2)")


def test_first_week_activity_must_be_week_one(app, jane, today):
    assert_bad_request(app.post("activities", {"date": today.isoformat(), "activity": "x", "weekNumber": 2}), "(1)")
    assert not ActivityEntry.objects.filter(client=jane).exists()
    assert_bad_request(app.post("activities", {"date": today.isoformat(), "activity": "x", "weekNumber": 13}))


def test_completing_week_twelve_completes_the_course(app, jane, today):
    CourseProgress.objects.create(client=jane, current_week=12)
    for offset in range(7):
        day = (today - timedelta(days=offset)).isoformat()
        assert app.post("activities", {"date": day, "activity": "plan", "weekNumber": 12}).status_code == 201
    course = CourseProgress.objects.get(client=jane)
    assert course.current_week == 12 and not course.is_active and course.completed_at is not None
    assert_bad_request(
        app.post("activities", {"date": today.isoformat(), "activity": "plan", "weekNumber": 12}), "completed"
    )
    # Activities outside the course still work.
    assert app.post("activities", {"date": today.isoformat(), "activity": "plan"}).status_code == 201


# --- Assessments ----------------------------------------------------------------------------------


def test_assessment_is_validated_by_the_catalogue(app, jane):
    score = {"style": "anxious", "anxiety": 4.2, "avoidance": 2.1}
    response = app.post("assessments", {"type": "attachment", "score": score, "responses": {"q1": 5}})
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "type", "score", "completedAt"}
    assert body["type"] == "attachment" and body["score"] == score
    assessment = Assessment.objects.get(pk=body["id"])
    assert assessment.responses == {"q1": 5} and assessment.client == jane

    bad = app.post("assessments", {"type": "attachment", "score": {"style": "anxious", "anxiety": 9, "avoidance": 2}})
    assert_bad_request(bad, "score.anxiety must be from 1 to 7")
    assert_bad_request(app.post("assessments", {"type": "horoscope", "score": {}}), "type")
    assert_bad_request(app.post("assessments", {"type": "attachment", "score": [1]}), "score")
    assert_bad_request(
        app.post("assessments", {"type": "relationship_satisfaction", "score": {"score": 50}, "responses": [1]}),
        "responses",
    )
    assert Assessment.objects.count() == 1


def test_assessment_refreshes_each_couple_of_the_client(app, jane, monkeypatch):
    john, alex = make_client("John", "Doe"), make_client("Alex", "Roe")
    first, second = make_couple(jane, john), make_couple(alex, jane)
    refreshed = []
    real = reports_service.couple_analysis_refresh
    monkeypatch.setattr(
        reports_service, "couple_analysis_refresh", lambda **kw: refreshed.append(kw["couple"].pk) or real(**kw)
    )
    response = app.post("assessments", {"type": "relationship_satisfaction", "score": {"score": 70}})
    assert response.status_code == 201
    assert sorted(refreshed) == sorted([first.pk, second.pk])


# --- Journal --------------------------------------------------------------------------------------


def test_journal_entry_is_stored_and_never_echoed(app, jane):
    text = "A private thought about the argument on Sunday"
    response = app.post("journal", {"text": text, "therapistHidden": True})
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "therapistHidden", "crisis", "createdAt"}
    assert body["therapistHidden"] is True and text not in response.content.decode()
    entry = JournalEntry.objects.get(pk=body["id"])
    assert entry.text == text and entry.therapist_hidden and entry.client == jane
    event = AuditEvent.objects.get(action="integration.journal_recorded")
    assert "argument" not in json.dumps(event.metadata)


@pytest.mark.parametrize(
    "body,fragment",
    [
        ({"text": "hello"}, "therapistHidden"),
        ({"text": "hello", "therapistHidden": "false"}, "therapistHidden"),
        ({"text": "", "therapistHidden": False}, "text"),
        ({"text": "x" * 20001, "therapistHidden": False}, "text"),
        ({"therapistHidden": False}, "text"),
    ],
)
def test_journal_validation(app, body, fragment):
    assert_bad_request(app.post("journal", body), fragment)
    assert not JournalEntry.objects.exists()


def test_crisis_journal_entry_raises_a_crisis_alert(app, jane):
    response = app.post("journal", {"text": "I can't go on", "therapistHidden": False, "crisis": True})
    assert response.status_code == 201
    assert not Alert.objects.exists()  # raised by the journal crisis batch, a minute later
    alerts_service.alerts_on_journal_crises(now=utc_now() + timedelta(minutes=2))
    alert = Alert.objects.get(client=jane, alert_type="CRISIS")
    assert "go on" not in alert.message and "go on" not in json.dumps(alert.metadata)


# --- Therapist links and consent ------------------------------------------------------------------


@pytest.fixture
def links(jane):
    tess, omar, pat = make_therapist("Tess", "Ther"), make_therapist("Omar", "Other"), make_therapist("Pat", "Pend")
    granted = link(tess, jane, "STANDARD")
    revoked = link(omar, jane, "FULL", revoked=True)
    pending = link(pat, jane, "BASIC", consent=False)
    link(tess, make_client("Someone", "Else"), "FULL")  # not Jane's
    return granted, revoked, pending


def test_links_list_shows_each_consent_state(app, links):
    granted, revoked, pending = links
    response = app.get("therapist-links")
    assert response.status_code == 200
    items = {item["linkId"]: item for item in response.json()["links"]}
    assert set(items) == {str(granted.pk), str(revoked.pk), str(pending.pk)}
    assert items[str(granted.pk)] == {
        "linkId": str(granted.pk),
        "therapist": {"id": str(granted.therapist_id), "firstName": "Tess", "lastName": "Ther"},
        "permissionLevel": "STANDARD",
        "consent": "granted",
        "consentGrantedAt": items[str(granted.pk)]["consentGrantedAt"],
        "consentRevokedAt": None,
    }
    assert items[str(granted.pk)]["consentGrantedAt"].endswith("Z")
    assert items[str(revoked.pk)]["consent"] == "revoked" and items[str(revoked.pk)]["consentRevokedAt"]
    assert items[str(pending.pk)]["consent"] == "pending" and items[str(pending.pk)]["consentGrantedAt"] is None


def progress(http, partner, therapist, client_id):
    return http.get(f"/api/integration/clients/{client_id}/progress", **partner.headers(therapist))


def test_level_change_applies_on_the_next_partner_request(app, client, jane, links):
    granted = links[0]
    therapist = granted.therapist
    partner = make_partner(therapists=[therapist])
    before = progress(client, partner, therapist, jane.pk)
    assert before.status_code == 200 and "moodTrends" in before.json()

    response = app.patch(f"therapist-links/{granted.pk}", {"permissionLevel": "BASIC"})
    assert response.status_code == 200, response.content
    assert response.json()["link"]["permissionLevel"] == "BASIC"
    after = progress(client, partner, therapist, jane.pk)
    assert after.status_code == 200 and "moodTrends" not in after.json()

    event = AuditEvent.objects.get(action="integration.permission_changed")
    assert (event.metadata["old_level"], event.metadata["new_level"]) == ("STANDARD", "BASIC")
    assert event.subject_id == str(jane.pk) and event.actor_type == "client"


def test_revoking_consent_blocks_the_next_request_and_notifies_partners(app, client, jane, links):
    granted = links[0]
    therapist = granted.therapist
    partner = make_partner(therapists=[therapist])
    WebhookEndpoint.objects.create(
        owner_type="integration_partner",
        owner_id=str(partner.partner.pk),
        url="https://hooks.example.com/lr",
        secret="s" * 40,
        events=["consent.revoked"],
        scheme=Scheme.LOVERESCUE,
    )
    assert progress(client, partner, therapist, jane.pk).status_code == 200

    response = app.patch(f"therapist-links/{granted.pk}", {"consent": "revoked"})
    assert response.status_code == 200
    assert response.json()["link"]["consent"] == "revoked"
    blocked = progress(client, partner, therapist, jane.pk)
    assert blocked.status_code == 403 and blocked.json()["code"] == "NO_CONSENT"

    event = WebhookEvent.objects.get(type="consent.revoked")
    payload = json.loads(event.payload)
    assert set(payload) == {"event", "clientId", "therapistId", "linkId", "revokedAt"}
    assert payload["clientId"] == str(jane.pk) and payload["linkId"] == str(granted.pk)
    assert "Jane" not in event.payload
    assert AuditEvent.objects.filter(action="integration.consent_revoked", subject_id=str(jane.pk)).count() == 1

    # Granting again restores access, clears the revocation and is audited.
    regranted = app.patch(f"therapist-links/{granted.pk}", {"consent": "granted"})
    body = regranted.json()["link"]
    assert body["consent"] == "granted" and body["consentRevokedAt"] is None
    assert progress(client, partner, therapist, jane.pk).status_code == 200
    assert AuditEvent.objects.filter(action="integration.consent_granted").count() == 1


def test_granting_a_pending_link(app, links):
    pending = links[2]
    response = app.patch(f"therapist-links/{pending.pk}", {"consent": "granted", "permissionLevel": "FULL"})
    assert response.status_code == 200
    pending.refresh_from_db()
    assert pending.has_consent and pending.permission_level == "FULL"


@pytest.mark.parametrize(
    "body,fragment",
    [
        ({}, "permissionLevel or consent is required"),
        ({"permissionLevel": "ADMIN"}, "permissionLevel"),
        ({"consent": "maybe"}, "consent"),
        ({"consent": "pending"}, "consent"),
    ],
)
def test_link_update_validation(app, links, body, fragment):
    granted = links[0]
    assert_bad_request(app.patch(f"therapist-links/{granted.pk}", body), fragment)
    granted.refresh_from_db()
    assert granted.permission_level == "STANDARD" and granted.has_consent


def test_another_clients_link_is_404(app, links):
    other_link = TherapistClientLink.objects.exclude(client=app.client).get()
    response = app.patch(f"therapist-links/{other_link.pk}", {"consent": "revoked"})
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"
    other_link.refresh_from_db()
    assert other_link.has_consent
    missing = app.patch("therapist-links/00000000-0000-0000-0000-000000000000", {"consent": "revoked"})
    assert missing.status_code == 404


# --- Tasks ----------------------------------------------------------------------------------------


def test_tasks_list_and_complete(app, jane, today):
    therapist = make_therapist()
    task = task_assign(
        therapist=therapist,
        client=jane,
        partner=None,
        description="Love Map exercise",
        module="gottman_love_maps",
        activities=["love_map_quiz"],
        notes="Be curious",
        due_date=today + timedelta(days=7),
        priority="high",
        actor=Actor.therapist(therapist.pk),
    )
    other = task_assign(
        therapist=therapist,
        client=make_client(),
        partner=None,
        description="Not Jane's",
        actor=Actor.therapist(therapist.pk),
    )

    listing = app.get("tasks")
    assert listing.status_code == 200
    tasks = listing.json()["tasks"]
    assert [t["id"] for t in tasks] == [str(task.pk)]
    assert tasks[0] == {
        "id": str(task.pk),
        "description": "Love Map exercise",
        "module": "gottman_love_maps",
        "activities": ["love_map_quiz"],
        "notes": "Be curious",
        "dueDate": f"{(today + timedelta(days=7)).isoformat()}T00:00:00.000Z",
        "priority": "high",
        "status": "pending",
        "createdAt": tasks[0]["createdAt"],
        "completedAt": None,
    }

    done = app.post(f"tasks/{task.pk}/complete")
    assert done.status_code == 200
    first_completed = done.json()["task"]["completedAt"]
    assert done.json()["task"]["status"] == "completed" and first_completed
    again = app.post(f"tasks/{task.pk}/complete")
    assert again.status_code == 200 and again.json()["task"]["completedAt"] == first_completed
    assert AuditEvent.objects.filter(action="integration.task_completed").count() == 1

    assert app.post(f"tasks/{other.pk}/complete").status_code == 404
    assert TherapistTask.objects.get(pk=other.pk).status == "pending"


# --- Access log and schema -------------------------------------------------------------------------


def test_requests_are_logged_with_the_client_id(app, jane, today):
    from audit.models import AccessLog

    app.post("checkins", {"date": today.isoformat(), "mood": 5, "closeness": 5})
    row = AccessLog.objects.filter(path="/api/app/checkins").latest("pk")
    assert f"client:{jane.pk}" in row.subject_ids and row.actor_type == "client"


def test_schema_documents_the_app_api(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json() if response["Content-Type"].startswith("application/json") else None
    if schema is None:
        import yaml

        schema = yaml.safe_load(response.content)
    paths = schema["paths"]
    expected = {
        "/api/app/checkins": "post",
        "/api/app/ratios": "post",
        "/api/app/activities": "post",
        "/api/app/assessments": "post",
        "/api/app/journal": "post",
        "/api/app/therapist-links": "get",
        "/api/app/therapist-links/{link_id}": "patch",
        "/api/app/tasks": "get",
        "/api/app/tasks/{task_id}/complete": "post",
    }
    for path, method in expected.items():
        operation = paths[path][method]
        assert operation["tags"] == ["LoveRescue"], path
        assert "LoveRescue app (client) API" in operation["description"], path
    journal_ref = paths["/api/app/journal"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    journal_schema = schema["components"]["schemas"][journal_ref.rsplit("/", 1)[1]]
    assert set(journal_schema["required"]) == {"text", "therapistHidden"}


def test_ratio_is_rounded_half_up(app, today):
    """One rounding rule (core.rounding): 25 positive and 4 negative is 6.25, shown as 6.3."""
    response = app.post("ratios", {"date": today.isoformat(), "positive": 25, "negative": 4})
    assert response.status_code == 201 and response.json()["ratio"] == 6.3
