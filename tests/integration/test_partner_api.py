"""The partner API endpoints (spec section 2): shapes, filters, validation, webhook registration,
consent changes on the next request, and the access log.

The clock the partner API reads is pinned per test (`now` fixture, tests/integration/partner_world.py),
and every date in the data is relative to it, so no test depends on when it runs.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from audit.models import AccessLog, AuditEvent
from core.time import utc_now
from integration.models import (
    ActivityEntry,
    Alert,
    AlertRecipient,
    CheckIn,
    Client,
    CourseProgress,
    RatioEntry,
    TherapistClientLink,
    TherapistTask,
)
from integration.selectors.couples import WITHHELD_REASON
from tests.integration import partner_world
from tests.integration.factories import link, make_client, make_couple, make_partner, make_therapist
from tests.integration.partner_world import (
    ALERTS,
    BASE,
    CASES,
    CLIENTS,
    NO_CONSENT,
    OUTCOMES,
    TOO_LOW,
    VISIBLE_MARKER,
    WEBHOOK,
    assert_error,
    make_alert,
    populate,
)
from webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db

# The shared fixtures, made visible to this module's tests.
now = partner_world.now
world = partner_world.world


# --- GET /clients ---------------------------------------------------------------------------------


def test_clients_lists_consented_links_only_with_the_spec_fields(client, world, now):
    response = client.get(CLIENTS, **world.headers("BASIC"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"clients", "total"}
    ids = {c["id"] for c in body["clients"]}
    expected = {str(world.clients[c].pk) for c in ("BASIC", "STANDARD", "FULL", "other_partner")}
    assert ids == expected and body["total"] == 4
    item = next(c for c in body["clients"] if c["id"] == str(world.clients["STANDARD"].pk))
    assert set(item) == {
        "id",
        "linkId",
        "firstName",
        "lastName",
        "email",
        "permissionLevel",
        "consentGrantedAt",
        "couple",
        "latestActivity",
        "latestMood",
        "courseWeek",
        "courseActive",
        "unreadAlerts",
    }
    standard_link = TherapistClientLink.objects.get(therapist=world.therapist, client=world.clients["STANDARD"])
    assert item["linkId"] == str(standard_link.pk)
    assert item["firstName"] == "Standard" and item["lastName"] == "Client"
    assert item["email"] == world.clients["STANDARD"].email
    assert item["permissionLevel"] == "STANDARD"
    assert item["consentGrantedAt"].endswith("Z")
    assert item["couple"] is None
    assert item["latestActivity"] == now.date().isoformat()
    assert item["latestMood"] == 6  # today's check-in (back=0)
    assert item["courseWeek"] == 3 and item["courseActive"] is True
    assert item["unreadAlerts"] == 4  # all four types visible at STANDARD


def test_clients_basic_has_no_mood_and_sees_only_basic_alerts(client, world):
    body = client.get(CLIENTS, **world.headers("BASIC")).json()
    item = next(c for c in body["clients"] if c["id"] == str(world.clients["BASIC"].pk))
    assert item["latestMood"] is None
    assert item["unreadAlerts"] == 2  # MILESTONE + STAGNATION


def test_clients_unread_alerts_are_per_therapist(client, world):
    full = world.clients["FULL"]
    alert = Alert.objects.filter(client=full, alert_type="MILESTONE").get()
    AlertRecipient.objects.create(alert=alert, therapist=world.therapist, read_at=utc_now())
    # Another therapist's read state does not count for this one.
    other_alert = Alert.objects.filter(client=full, alert_type="RISK").get()
    AlertRecipient.objects.create(alert=other_alert, therapist=world.other_therapist, read_at=utc_now())
    body = client.get(CLIENTS, **world.headers("FULL")).json()
    item = next(c for c in body["clients"] if c["id"] == str(full.pk))
    assert item["unreadAlerts"] == 3


def test_clients_without_course_or_data(client, now):
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist])
    bare = make_client("Bare", "Client")
    link(therapist, bare, "FULL")
    item = client.get(CLIENTS, **partner.headers(therapist)).json()["clients"][0]
    assert item["courseWeek"] is None and item["courseActive"] is False
    assert item["latestActivity"] is None and item["latestMood"] is None and item["unreadAlerts"] == 0


def test_clients_couple_withholds_members_not_consented_to_this_therapist(client, now):
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist])
    jane, john, alex, sam = (make_client(n, "Doe") for n in ("Jane", "John", "Alex", "Sam"))
    link(therapist, jane, "BASIC")
    link(therapist, john, "FULL")
    link(therapist, alex, "STANDARD")
    link(therapist, sam, "FULL", revoked=True)
    both = make_couple(jane, john)
    half = make_couple(alex, sam)
    clients = {c["id"]: c for c in client.get(CLIENTS, **partner.headers(therapist)).json()["clients"]}
    assert clients[str(jane.pk)]["couple"] == {
        "id": str(both.pk),
        "status": "active",
        "partner1": {"id": str(jane.pk), "firstName": "Jane", "lastName": "Doe"},
        "partner2": {"id": str(john.pk), "firstName": "John", "lastName": "Doe"},
    }
    assert clients[str(alex.pk)]["couple"] == {
        "id": str(half.pk),
        "status": "active",
        "partner1": {"id": str(alex.pk), "firstName": "Alex", "lastName": "Doe"},
        "partner2": {"id": None, "withheld": True},  # no client id for a member who did not consent
    }
    assert str(sam.pk) not in clients


def test_clients_couple_prefers_an_active_couple_then_the_newest(client, now):
    from integration.models import Couple

    therapist = make_therapist()
    partner = make_partner(therapists=[therapist])
    jane, old, new, former = (make_client(n, "Doe") for n in ("Jane", "Old", "New", "Former"))
    for person in (jane, old, new, former):
        link(therapist, person, "BASIC")
    older = make_couple(jane, old)
    newer = make_couple(jane, new)
    newest_inactive = make_couple(jane, former)
    Couple.objects.filter(pk=older.pk).update(created_at=now - timedelta(days=30))
    Couple.objects.filter(pk=newer.pk).update(created_at=now - timedelta(days=20))
    Couple.objects.filter(pk=newest_inactive.pk).update(created_at=now - timedelta(days=1), status="inactive")
    clients = {c["id"]: c for c in client.get(CLIENTS, **partner.headers(therapist)).json()["clients"]}
    assert clients[str(jane.pk)]["couple"]["id"] == str(newer.pk)
    assert clients[str(former.pk)]["couple"] == {
        "id": str(newest_inactive.pk),
        "status": "inactive",
        "partner1": {"id": str(jane.pk), "firstName": "Jane", "lastName": "Doe"},
        "partner2": {"id": str(former.pk), "firstName": "Former", "lastName": "Doe"},
    }


# --- GET /clients/:id/progress --------------------------------------------------------------------


def test_progress_full_values(client, world, now):
    full = world.clients["FULL"]
    TherapistTask.objects.create(
        therapist=world.therapist, client=full, description="done", status=TherapistTask.Status.COMPLETED
    )
    TherapistTask.objects.create(therapist=world.other_therapist, client=full, description="not ours")
    response = client.get(f"{CLIENTS}/{full.pk}/progress", **world.headers("FULL"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["clientId"] == str(full.pk)
    assert [a["type"] for a in body["assessmentScores"]] == ["attachment", "gottman_ratio"]
    assert body["assessmentScores"][0]["score"] == {"style": "anxious", "anxiety": 4.2, "avoidance": 2.1}
    assert body["activityCompletion"] == {
        "totalDays": 90,
        "daysActive": 10,
        "completionRate": 11,
        "streak": 10,
        "tasksCompleted": 1,
        "tasksPending": 1,
    }
    assert body["courseProgress"] == {
        "currentWeek": 3,
        "isActive": True,
        "completedWeeks": [1, 2],
        "weeklyStrategies": [
            {
                "weekNumber": 1,
                "theme": "Week one",
                "completedDays": 7,
                "completedAt": body["courseProgress"]["weeklyStrategies"][0]["completedAt"],
            },
            {
                "weekNumber": 2,
                "theme": "Week two",
                "completedDays": 7,
                "completedAt": body["courseProgress"]["weeklyStrategies"][1]["completedAt"],
            },
            {"weekNumber": 3, "theme": "Week three", "completedDays": 2, "completedAt": None},
        ],
    }
    assert body["courseProgress"]["weeklyStrategies"][0]["completedAt"].endswith("Z")
    assert len(body["moodTrends"]) == 10
    assert body["moodTrends"][-1] == {"date": now.date().isoformat(), "mood": 6, "closeness": 5}
    ratios = {r["date"]: r for r in body["ratioTrends"]}
    yesterday = (now.date() - timedelta(days=1)).isoformat()
    assert ratios[yesterday] == {"date": yesterday, "positive": 5, "negative": 1, "ratio": 5.0}
    assert ratios[now.date().isoformat()]["ratio"] is None  # negative == 0
    assert body["individualResponses"] == [
        {
            "type": "attachment",
            "responses": {"q1": 4, "q2": 2},
            "completedAt": body["assessmentScores"][0]["completedAt"],
        }
    ]
    assert [j["text"] for j in body["journalEntries"]] == [VISIBLE_MARKER]
    assert set(body["journalEntries"][0]) == {"id", "text", "createdAt"}


def test_progress_windows_and_streak_boundaries(client, now):
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist])
    person = make_client()
    link(therapist, person, "STANDARD")
    today = now.date()
    # Active yesterday and the 4 days before (streak 5, today not yet active), plus day 89 (inside the
    # window) and day 90 (outside it); two activities on one day count once.
    for back in (1, 2, 3, 4, 5, 89, 90):
        ActivityEntry.objects.create(client=person, date=today - timedelta(days=back), activity="a")
    ActivityEntry.objects.create(client=person, date=today - timedelta(days=1), activity="b")
    CheckIn.objects.create(client=person, date=today - timedelta(days=90), mood=3, closeness=3)
    CheckIn.objects.create(client=person, date=today - timedelta(days=89), mood=4, closeness=4)
    body = client.get(f"{CLIENTS}/{person.pk}/progress", **partner.headers(therapist)).json()
    completion = body["activityCompletion"]
    assert completion["daysActive"] == 6
    assert completion["completionRate"] == 7  # round(600 / 90)
    assert completion["streak"] == 5
    assert [m["mood"] for m in body["moodTrends"]] == [4]
    assert body["courseProgress"] == {
        "currentWeek": None,
        "isActive": False,
        "completedWeeks": [],
        "weeklyStrategies": [],
    }


def test_streak_is_zero_when_the_last_activity_is_two_days_old(client, now):
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist])
    person = make_client()
    link(therapist, person, "BASIC")
    for back in (2, 3, 4):
        ActivityEntry.objects.create(client=person, date=now.date() - timedelta(days=back), activity="a")
    body = client.get(f"{CLIENTS}/{person.pk}/progress", **partner.headers(therapist)).json()
    assert body["activityCompletion"]["streak"] == 0
    assert body["activityCompletion"]["daysActive"] == 3


def test_gottman_ratio_rounds_half_up_in_progress_and_in_the_session_prep_report(client, now):
    """One rounding rule (core.rounding): a day of 25 positive / 4 negative (6.25) shows 6.3 in the
    progress ratioTrends and in the session-prep report (the progress endpoint used to show 6.2)."""
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist])
    person = make_client()
    link(therapist, person, "STANDARD")
    RatioEntry.objects.create(client=person, date=now.date(), positive=25, negative=4)
    progress = client.get(f"{CLIENTS}/{person.pk}/progress", **partner.headers(therapist)).json()
    assert progress["ratioTrends"] == [{"date": now.date().isoformat(), "positive": 25, "negative": 4, "ratio": 6.3}]
    since = (now - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    response = client.get(
        f"{CLIENTS}/{person.pk}/session-prep", {"lastSessionDate": since}, **partner.headers(therapist)
    )
    assert response.status_code == 200, response.content
    assert response.json()["report"]["expertInsights"] == [
        {"expert": "Gottman", "insight": "5:1 ratio averaged 6.3 since last session (target 5.0)"}
    ]


def test_progress_unknown_client_is_404(client, world):
    response = client.get(f"{CLIENTS}/00000000-0000-0000-0000-000000000000/progress", **world.headers("FULL"))
    assert_error(response, 404, "NOT_FOUND")


# --- GET /clients/:id/session-prep ----------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["yesterday", "2026-13-01", "2026-02-30T10:00:00Z", "", "FUTURE"],
)
def test_session_prep_bad_or_future_last_session_date_is_400(client, world, now, value):
    if value == "FUTURE":
        value = (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    response = client.get(
        f"{CLIENTS}/{world.clients['STANDARD'].pk}/session-prep",
        {"lastSessionDate": value},
        **world.headers("STANDARD"),
    )
    assert_error(response, 400, "BAD_REQUEST")
    assert "lastSessionDate" in response.json()["error"]


def test_session_prep_basic_is_insufficient_permission(client, world):
    response = client.get(f"{CLIENTS}/{world.clients['BASIC'].pk}/session-prep", **world.headers("BASIC"))
    assert_error(response, 403, "INSUFFICIENT_PERMISSION", TOO_LOW)


def test_session_prep_returns_and_persists_a_report(client, world, now):
    from integration.models import SessionPrepReport

    standard = world.clients["STANDARD"]
    last = (now - timedelta(days=7)).replace(microsecond=0)
    response = client.get(
        f"{CLIENTS}/{standard.pk}/session-prep",
        {"lastSessionDate": last.isoformat().replace("+00:00", "Z")},
        **world.headers("STANDARD"),
    )
    assert response.status_code == 200, response.content
    report = response.json()["report"]
    assert set(report) == {
        "id",
        "therapistId",
        "clientId",
        "reportDate",
        "lastSessionDate",
        "activitiesCompleted",
        "assessmentChanges",
        "moodTrends",
        "crisisFlags",
        "generatedSummary",
        "expertInsights",
    }
    assert report["clientId"] == str(standard.pk) and report["therapistId"] == str(world.therapist.pk)
    assert report["lastSessionDate"].startswith(last.strftime("%Y-%m-%dT%H:%M:%S"))
    stored = SessionPrepReport.objects.get(pk=report["id"])
    assert stored.client_id == standard.pk and stored.therapist_id == world.therapist.pk
    event = AuditEvent.objects.get(action="integration.session_prep_generated", subject_id=str(standard.pk))
    assert event.actor_type == "integration_partner" and event.actor_id == str(world.partner.partner.pk)
    # Without lastSessionDate the service picks the window (previous report, else 7 days).
    again = client.get(f"{CLIENTS}/{standard.pk}/session-prep", **world.headers("STANDARD"))
    assert again.status_code == 200, again.content
    assert again.json()["report"]["id"] != report["id"]
    assert SessionPrepReport.objects.filter(client=standard).count() == 2


# --- GET /couples/:id/dynamics --------------------------------------------------------------------


def _couple_world(now, *, level1="FULL", level2="BASIC", consent2=True):
    from integration.models import CoupleProfile, Matchup

    therapist = make_therapist()
    partner = make_partner(therapists=[therapist])
    jane, john = make_client("Jane", "Doe"), make_client("John", "Doe")
    populate(jane, now.date())
    populate(john, now.date())
    link(therapist, jane, level1)
    if consent2:
        link(therapist, john, level2)
    couple = make_couple(jane, john)
    for n in range(12):
        Matchup.objects.create(
            couple=couple,
            score=50 + n,
            alignments={"compatible": ["time"], "misses": []},
            inputs_fingerprint=f"fp{n}",
            generated_at=now - timedelta(days=12 - n),
        )
    CoupleProfile.objects.create(
        couple=couple,
        content={"attachmentDynamic": {"pattern": "anxious-avoidant", "description": "d"}, "strengths": ["x"]},
        inputs_fingerprint="fp",
        generated_at=now,
    )
    return therapist, partner, jane, john, couple


def test_dynamics_both_consented_shows_everything(client, now):
    therapist, partner, jane, john, couple = _couple_world(now)
    response = client.get(f"{BASE}/couples/{couple.pk}/dynamics", **partner.headers(therapist))
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"couple", "consent", "partner1", "partner2", "matchups", "coupleProfile"}
    assert body["couple"] == {"id": str(couple.pk), "status": "active"}
    assert body["consent"] == {"partner1": True, "partner2": True}
    assert body["partner1"]["user"] == {"id": str(jane.pk), "firstName": "Jane", "lastName": "Doe"}
    assert set(body["partner1"]) == {"user", "assessmentScores", "activityDays", "moodAvg"}
    assert body["partner1"]["activityDays"] == 10
    assert body["partner1"]["moodAvg"] == round(sum(6 + b % 3 for b in range(10)) / 10, 1)
    # John is BASIC: no mood average at all.
    assert set(body["partner2"]) == {"user", "assessmentScores", "activityDays"}
    assert [m["score"] for m in body["matchups"]] == list(range(61, 51, -1))  # latest first, 10
    assert body["coupleProfile"]["attachmentDynamic"]["pattern"] == "anxious-avoidant"


def test_dynamics_one_side_withheld(client, now):
    therapist, partner, jane, john, couple = _couple_world(now, consent2=False)
    body = client.get(f"{BASE}/couples/{couple.pk}/dynamics", **partner.headers(therapist)).json()
    assert body["consent"] == {"partner1": True, "partner2": False}
    assert body["partner2"] == {"withheld": True, "reason": WITHHELD_REASON}
    assert body["matchups"] == [] and body["coupleProfile"] is None
    assert "John" not in str(body) and str(john.pk) not in str(body)


def test_dynamics_revoked_side_is_withheld_and_none_is_403(client, now):
    therapist, partner, jane, john, couple = _couple_world(now)
    TherapistClientLink.objects.filter(client=john).update(consent_revoked_at=utc_now())
    body = client.get(f"{BASE}/couples/{couple.pk}/dynamics", **partner.headers(therapist)).json()
    assert body["consent"] == {"partner1": True, "partner2": False}
    TherapistClientLink.objects.filter(client=jane).update(consent_revoked_at=utc_now())
    response = client.get(f"{BASE}/couples/{couple.pk}/dynamics", **partner.headers(therapist))
    assert_error(response, 403, "NO_CONSENT", NO_CONSENT)


def test_dynamics_unknown_couple_is_404(client, world):
    response = client.get(f"{BASE}/couples/00000000-0000-0000-0000-000000000000/dynamics", **world.headers("FULL"))
    assert_error(response, 404, "NOT_FOUND")


# --- GET /alerts ----------------------------------------------------------------------------------


@pytest.fixture
def alert_world(now):
    """One STANDARD client with 6 alerts over 6 days (types cycle), one BASIC client with a CRISIS and a
    MILESTONE alert, one revoked client with a MILESTONE alert."""
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist])
    standard, basic, revoked = make_client("Std", "A"), make_client("Bas", "B"), make_client("Rev", "C")
    link(therapist, standard, "STANDARD")
    link(therapist, basic, "BASIC")
    link(therapist, revoked, "FULL", revoked=True)
    types = ["CRISIS", "RISK", "MILESTONE", "STAGNATION", "MILESTONE", "RISK"]
    alerts = [make_alert(standard, t, created_at=now - timedelta(days=n)) for n, t in enumerate(types)]
    basic_crisis = make_alert(basic, "CRISIS", created_at=now - timedelta(hours=2))
    basic_milestone = make_alert(basic, "MILESTONE", created_at=now - timedelta(hours=3))
    make_alert(revoked, "MILESTONE", created_at=now)
    AlertRecipient.objects.create(alert=alerts[1], therapist=therapist, read_at=now)
    return {
        "therapist": therapist,
        "headers": partner.headers(therapist),
        "alerts": alerts,
        "basic_crisis": basic_crisis,
        "basic_milestone": basic_milestone,
        "standard": standard,
    }


def test_alerts_visibility_shape_and_counts(client, alert_world, now):
    response = client.get(ALERTS, **alert_world["headers"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"alerts", "unreadCount", "total"}
    ids = [a["id"] for a in body["alerts"]]
    # Newest first; the BASIC client's CRISIS alert and the revoked client's alert are invisible.
    assert str(alert_world["basic_crisis"].pk) not in ids
    assert ids[:2] == [str(alert_world["alerts"][0].pk), str(alert_world["basic_milestone"].pk)]
    assert body["total"] == 7 and len(ids) == 7 and body["unreadCount"] == 6
    first = body["alerts"][0]
    assert set(first) == {
        "id",
        "clientId",
        "client",
        "alertType",
        "severity",
        "message",
        "metadata",
        "readAt",
        "createdAt",
    }
    standard = alert_world["standard"]
    assert first["clientId"] == str(standard.pk)
    assert first["client"] == {"id": str(standard.pk), "firstName": "Std", "lastName": "A"}
    assert first["alertType"] == "CRISIS" and first["severity"] == "CRITICAL"
    assert first["metadata"] == {"n": 1} and first["readAt"] is None and first["createdAt"].endswith("Z")
    read = next(a for a in body["alerts"] if a["id"] == str(alert_world["alerts"][1].pk))
    assert read["readAt"].endswith("Z")


@pytest.mark.parametrize(
    "params,total,unread,returned",
    [
        ({"type": "RISK"}, 2, 1, 2),
        ({"type": "MILESTONE"}, 3, 3, 3),
        ({"unreadOnly": "true"}, 6, 6, 6),
        ({"unreadOnly": "1"}, 6, 6, 6),
        ({"unreadOnly": "false"}, 7, 6, 7),
        ({"unreadOnly": "0"}, 7, 6, 7),
        ({"limit": "2"}, 7, 6, 2),
        ({"limit": "500"}, 7, 6, 7),
        ({"type": "RISK", "unreadOnly": "true"}, 1, 1, 1),
        ({"since": "SINCE_2_5_DAYS"}, 4, 3, 4),
        ({"since": "SINCE_2_5_DAYS", "limit": "1"}, 4, 3, 1),
    ],
)
def test_alert_filters(client, alert_world, now, params, total, unread, returned):
    params = dict(params)
    if params.get("since") == "SINCE_2_5_DAYS":
        params["since"] = (now - timedelta(days=2, hours=12)).isoformat().replace("+00:00", "Z")
    body = client.get(ALERTS, params, **alert_world["headers"]).json()
    assert (body["total"], body["unreadCount"], len(body["alerts"])) == (total, unread, returned)
    if "type" in params:
        assert {a["alertType"] for a in body["alerts"]} == {params["type"]}


@pytest.mark.parametrize("suffix", ["Z", "+00:00", " 00:00", "+02:00"])
def test_alert_since_accepts_offsets(client, alert_world, now, suffix):
    """`since` with an offset; an unencoded "+" (decoded as a space) is read as "+"."""
    hours = 2 if suffix == "+02:00" else 0
    local = (now - timedelta(days=1, hours=12) + timedelta(hours=hours)).replace(tzinfo=None)
    body = client.get(ALERTS, {"since": local.isoformat() + suffix}, **alert_world["headers"]).json()
    assert body["total"] == 3  # alerts[0], alerts[1] (1 day old) and the BASIC client's milestone


def test_alert_since_is_strictly_after(client, alert_world, now):
    exact = alert_world["alerts"][2].created_at.isoformat().replace("+00:00", "Z")
    body = client.get(ALERTS, {"since": exact}, **alert_world["headers"]).json()
    assert str(alert_world["alerts"][2].pk) not in [a["id"] for a in body["alerts"]]
    assert str(alert_world["alerts"][1].pk) in [a["id"] for a in body["alerts"]]


@pytest.mark.parametrize(
    "params,name",
    [
        ({"type": "crisis"}, "type"),
        ({"type": "OTHER"}, "type"),
        ({"type": ""}, "type"),
        ({"unreadOnly": "yes"}, "unreadOnly"),
        ({"unreadOnly": ""}, "unreadOnly"),
        ({"since": "last week"}, "since"),
        ({"since": "2026-02-30"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1.5"}, "limit"),
    ],
)
def test_alert_bad_parameters_are_400_naming_the_parameter(client, alert_world, params, name):
    response = client.get(ALERTS, params, **alert_world["headers"])
    assert_error(response, 400, "BAD_REQUEST")
    assert response.json()["error"].startswith(name)


def test_alert_level_change_applies_to_visibility_at_once(client, alert_world):
    TherapistClientLink.objects.filter(client=alert_world["standard"]).update(permission_level="BASIC")
    body = client.get(ALERTS, **alert_world["headers"]).json()
    assert {a["alertType"] for a in body["alerts"]} == {"MILESTONE", "STAGNATION"}


# --- POST /alerts/:id/read ------------------------------------------------------------------------


def test_alert_read_marks_read_for_this_therapist_only(client, alert_world, now):
    alert = alert_world["alerts"][0]
    response = client.post(f"{ALERTS}/{alert.pk}/read", **alert_world["headers"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"alert"} and body["alert"]["id"] == str(alert.pk)
    assert body["alert"]["readAt"].endswith("Z")
    recipient = AlertRecipient.objects.get(alert=alert, therapist=alert_world["therapist"])
    assert recipient.read_at is not None
    first_read = recipient.read_at
    # Idempotent: the first read time is kept.
    again = client.post(f"{ALERTS}/{alert.pk}/read", **alert_world["headers"]).json()
    assert AlertRecipient.objects.get(pk=recipient.pk).read_at == first_read
    assert again["alert"]["readAt"] == body["alert"]["readAt"]
    assert AuditEvent.objects.filter(action="integration.alert_read").count() == 1
    counts = client.get(ALERTS, **alert_world["headers"]).json()
    assert counts["unreadCount"] == 5


def test_alert_read_of_invisible_or_unknown_alert_is_404(client, alert_world):
    for alert_id in (alert_world["basic_crisis"].pk, "00000000-0000-0000-0000-000000000000"):
        response = client.post(f"{ALERTS}/{alert_id}/read", **alert_world["headers"])
        assert_error(response, 404, "NOT_FOUND")
    assert not AlertRecipient.objects.filter(alert=alert_world["basic_crisis"]).exists()


# --- POST /clients/:id/assign ---------------------------------------------------------------------


def test_assign_creates_a_task_with_the_spec_response(client, world, now):
    basic = world.clients["BASIC"]
    due = now.date() + timedelta(days=7)
    payload = {
        "taskDescription": "Complete the Gottman Love Map exercise",
        "module": "gottman_love_maps",
        "activities": ["love_map_quiz", "open_ended_questions"],
        "notes": "Focus on curiosity about partner's inner world",
        "dueDate": due.isoformat(),
        "priority": "high",
    }
    response = client.post(
        f"{CLIENTS}/{basic.pk}/assign", payload, content_type="application/json", **world.headers("BASIC")
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["message"] == "Activity assigned"
    task = body["task"]
    assert set(task) == {"id", "description", "priority", "dueDate", "createdAt"}
    assert task["description"] == payload["taskDescription"] and task["priority"] == "high"
    assert task["dueDate"] == f"{due.isoformat()}T00:00:00.000Z"
    assert task["createdAt"].endswith("Z")
    stored = TherapistTask.objects.get(pk=task["id"])
    assert stored.therapist == world.therapist and stored.client == basic
    assert stored.partner == world.partner.partner
    assert stored.module == "gottman_love_maps" and stored.activities == payload["activities"]
    assert stored.notes == payload["notes"] and stored.due_date == due
    assert stored.status == TherapistTask.Status.PENDING
    event = AuditEvent.objects.get(action="integration.task_assigned")
    assert event.subject_id == str(basic.pk) and event.metadata["task_id"] == task["id"]
    assert payload["taskDescription"] not in str(event.metadata) and payload["notes"] not in str(event.metadata)


def test_assign_defaults(client, world, now):
    basic = world.clients["BASIC"]
    response = client.post(
        f"{CLIENTS}/{basic.pk}/assign",
        {"taskDescription": "Just this", "dueDate": now.date().isoformat()},
        content_type="application/json",
        **world.headers("BASIC"),
    )
    assert response.status_code == 201, response.content
    task = TherapistTask.objects.get(pk=response.json()["task"]["id"])
    assert task.priority == "medium" and task.module == "" and task.activities == [] and task.notes is None
    assert response.json()["task"]["priority"] == "medium"


@pytest.mark.parametrize(
    "payload,field_name",
    [
        ({}, "taskDescription"),
        ({"taskDescription": ""}, "taskDescription"),
        ({"taskDescription": "x" * 2001}, "taskDescription"),
        ({"taskDescription": "ok", "module": "not a slug!"}, "module"),
        ({"taskDescription": "ok", "module": "m" * 101}, "module"),
        ({"taskDescription": "ok", "activities": "love_map_quiz"}, "activities"),
        ({"taskDescription": "ok", "activities": ["a"] * 51}, "activities"),
        ({"taskDescription": "ok", "activities": [{"x": 1}]}, "activities"),
        ({"taskDescription": "ok", "notes": "n" * 5001}, "notes"),
        ({"taskDescription": "ok", "dueDate": "19/02/2026"}, "dueDate"),
        ({"taskDescription": "ok", "dueDate": "2026-02-19T00:00:00Z"}, "dueDate"),
        ({"taskDescription": "ok", "dueDate": "YESTERDAY"}, "dueDate"),
        ({"taskDescription": "ok", "priority": "urgent"}, "priority"),
    ],
)
def test_assign_validation(client, world, now, payload, field_name):
    if payload.get("dueDate") == "YESTERDAY":
        payload = {**payload, "dueDate": (now.date() - timedelta(days=1)).isoformat()}
    response = client.post(
        f"{CLIENTS}/{world.clients['FULL'].pk}/assign",
        payload,
        content_type="application/json",
        **world.headers("FULL"),
    )
    assert_error(response, 400, "BAD_REQUEST")
    assert response.json()["error"].startswith(field_name)
    assert not TherapistTask.objects.filter(partner=world.partner.partner).exists()


def test_assign_boundaries_are_accepted(client, world, now):
    response = client.post(
        f"{CLIENTS}/{world.clients['FULL'].pk}/assign",
        {"taskDescription": "x" * 2000, "activities": ["a"] * 50, "notes": "n" * 5000, "module": "m" * 100},
        content_type="application/json",
        **world.headers("FULL"),
    )
    assert response.status_code == 201, response.content
    assert response.json()["task"]["dueDate"] is None


# --- GET /outcomes --------------------------------------------------------------------------------


def test_outcomes_summary_and_clients(client, world):
    CourseProgress.objects.filter(client=world.clients["FULL"]).update(
        current_week=12, is_active=False, completed_at=utc_now()
    )
    CourseProgress.objects.filter(client=world.clients["BASIC"]).update(current_week=4)
    CourseProgress.objects.filter(client=world.clients["other_partner"]).delete()
    response = client.get(OUTCOMES, **world.headers("FULL"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"outcomes"} and set(body["outcomes"]) == {"summary", "clients"}
    rows = {row["clientId"]: row for row in body["outcomes"]["clients"]}
    consented = {str(world.clients[c].pk) for c in ("BASIC", "STANDARD", "FULL", "other_partner")}
    assert set(rows) == consented
    assert rows[str(world.clients["BASIC"].pk)] == {
        "clientId": str(world.clients["BASIC"].pk),
        "assessmentTypes": 2,
        "courseWeek": 4,
        "courseCompleted": False,
        "crisisAlerts": 0,  # CRISIS is STANDARD data
        "milestones": 1,
    }
    assert rows[str(world.clients["STANDARD"].pk)]["crisisAlerts"] == 1
    assert rows[str(world.clients["FULL"].pk)]["courseCompleted"] is True
    assert rows[str(world.clients["other_partner"].pk)]["courseWeek"] is None
    assert body["outcomes"]["summary"] == {
        "totalClients": 4,
        "activeInCourse": 2,  # BASIC and STANDARD; FULL completed, other_partner has no course
        "courseCompleted": 1,
        "totalCrisisAlerts": 3,  # STANDARD, FULL and other_partner (FULL); not BASIC
        "totalMilestones": 4,
        "avgCourseWeek": round((4 + 3 + 12) / 3, 1),
    }


def test_outcomes_empty_caseload(client, now):
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist])
    body = client.get(OUTCOMES, **partner.headers(therapist)).json()
    assert body == {
        "outcomes": {
            "summary": {
                "totalClients": 0,
                "activeInCourse": 0,
                "courseCompleted": 0,
                "totalCrisisAlerts": 0,
                "totalMilestones": 0,
                "avgCourseWeek": None,
            },
            "clients": [],
        }
    }


# --- POST /webhook/register -----------------------------------------------------------------------


@pytest.fixture
def webhook_settings(settings):
    settings.WEBHOOK_REQUIRE_HTTPS = False
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    return settings


def _register(client, world, url, events):
    return client.post(
        WEBHOOK, {"webhookUrl": url, "events": events}, content_type="application/json", **world.headers("FULL")
    )


def test_webhook_register_returns_the_secret_once_and_replaces(client, world, webhook_settings):
    events = ["alert.created", "alert.critical", "milestone.achieved"]
    first = _register(client, world, "http://127.0.0.1:9/hook-one", events)
    assert first.status_code == 200, first.content
    body = first.json()
    assert set(body) == {"message", "webhookUrl", "webhookSecret", "events"}
    assert body["message"] == "Webhook registered successfully"
    assert body["webhookUrl"] == "http://127.0.0.1:9/hook-one" and body["events"] == events
    assert len(body["webhookSecret"]) >= 32
    owned = WebhookEndpoint.objects.filter(owner_type="integration_partner", owner_id=str(world.partner.partner.pk))
    old = owned.get()
    assert old.is_active and old.scheme == "loverescue" and old.secret == body["webhookSecret"]
    second = _register(client, world, "http://127.0.0.1:9/hook-two", ["consent.revoked"])
    assert second.status_code == 200, second.content
    assert second.json()["webhookSecret"] != body["webhookSecret"]
    old.refresh_from_db()
    assert old.is_active is False
    active = owned.filter(is_active=True).get()
    assert active.url == "http://127.0.0.1:9/hook-two" and active.events == ["consent.revoked"]


@pytest.mark.parametrize(
    "events",
    [[], ["alert.created", "alert.deleted"], ["*"], "alert.created", None, [1]],
)
def test_webhook_register_invalid_events_400(client, world, webhook_settings, events):
    response = _register(client, world, "http://127.0.0.1:9/hook", events)
    assert_error(response, 400, "BAD_REQUEST")
    assert response.json()["error"].startswith("events")
    assert not WebhookEndpoint.objects.exists()


def test_webhook_register_requires_https_when_configured(client, world, webhook_settings):
    webhook_settings.WEBHOOK_REQUIRE_HTTPS = True
    response = _register(client, world, "http://127.0.0.1:9/hook", ["alert.created"])
    assert_error(response, 400, "BAD_REQUEST")
    assert "https" in response.json()["error"]
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://10.0.0.1/hook", "http://[::1]:9/hook"])
def test_webhook_register_refuses_private_addresses(client, world, webhook_settings, url):
    webhook_settings.OUTBOUND_ALLOW_LOOPBACK = False
    response = _register(client, world, url, ["alert.created"])
    assert_error(response, 400, "BAD_REQUEST")
    assert "refused" in response.json()["error"]
    assert not WebhookEndpoint.objects.exists()


def test_webhook_register_missing_url_400(client, world, webhook_settings):
    response = client.post(
        WEBHOOK, {"events": ["alert.created"]}, content_type="application/json", **world.headers("FULL")
    )
    assert_error(response, 400, "BAD_REQUEST")
    assert response.json()["error"].startswith("webhookUrl")


# --- Consent changes and the access log -----------------------------------------------------------


def test_revoking_consent_applies_on_the_next_request(client, world):
    full = world.clients["FULL"]
    headers = world.headers("FULL")
    assert client.get(f"{CLIENTS}/{full.pk}/progress", **headers).status_code == 200
    TherapistClientLink.objects.filter(therapist=world.therapist, client=full).update(consent_revoked_at=utc_now())
    response = client.get(f"{CLIENTS}/{full.pk}/progress", **headers)
    assert_error(response, 403, "NO_CONSENT", NO_CONSENT)
    ids = {c["id"] for c in client.get(CLIENTS, **headers).json()["clients"]}
    assert str(full.pk) not in ids
    alert_clients = {a["clientId"] for a in client.get(ALERTS, **headers).json()["alerts"]}
    assert str(full.pk) not in alert_clients
    # Granting again (new consent) restores access on the next request.
    TherapistClientLink.objects.filter(therapist=world.therapist, client=full).update(
        consent_revoked_at=None, consent_granted_at=utc_now()
    )
    assert client.get(f"{CLIENTS}/{full.pk}/progress", **headers).status_code == 200


def test_level_change_applies_on_the_next_request(client, world):
    full = world.clients["FULL"]
    headers = world.headers("FULL")
    assert "journalEntries" in client.get(f"{CLIENTS}/{full.pk}/progress", **headers).json()
    TherapistClientLink.objects.filter(therapist=world.therapist, client=full).update(permission_level="BASIC")
    body = client.get(f"{CLIENTS}/{full.pk}/progress", **headers).json()
    assert set(body) == {"clientId", "assessmentScores", "activityCompletion", "courseProgress"}


def _last_log(path: str) -> AccessLog:
    return AccessLog.objects.filter(path=path).order_by("-id").first()


def test_every_request_is_logged_with_the_clients_it_touched(client, world, webhook_settings):
    headers = world.headers("FULL")
    partner_id = str(world.partner.partner.pk)
    full, standard = world.clients["FULL"], world.clients["STANDARD"]
    consented = {f"client:{world.clients[c].pk}" for c in ("BASIC", "STANDARD", "FULL", "other_partner")}

    client.get(CLIENTS, **headers)
    log = _last_log(CLIENTS)
    assert log.status_code == 200 and log.actor_type == "integration_partner" and log.actor_id == partner_id
    assert set(log.subject_ids) == consented

    path = f"{CLIENTS}/{full.pk}/progress"
    client.get(path, **headers)
    assert _last_log(path).subject_ids == [f"client:{full.pk}"]

    client.get(OUTCOMES, **headers)
    assert set(_last_log(OUTCOMES).subject_ids) == consented

    client.get(ALERTS, {"type": "CRISIS"}, **headers)
    other = world.clients["other_partner"]
    assert set(_last_log(ALERTS).subject_ids) == {f"client:{c.pk}" for c in (standard, full, other)}

    path = f"{CLIENTS}/{full.pk}/assign"
    client.post(path, {"taskDescription": "t"}, content_type="application/json", **headers)
    assert _last_log(path).subject_ids == [f"client:{full.pk}"] and _last_log(path).status_code == 201

    # A refused request is logged with the client it asked for and its status.
    revoked = world.clients["revoked"]
    path = f"{CLIENTS}/{revoked.pk}/progress"
    client.get(path, **headers)
    log = _last_log(path)
    assert log.status_code == 403 and log.subject_ids == [f"client:{revoked.pk}"]

    client.post(
        WEBHOOK,
        {"webhookUrl": "http://127.0.0.1:9/h", "events": ["alert.created"]},
        content_type="application/json",
        **headers,
    )
    log = _last_log(WEBHOOK)
    assert log.status_code == 200 and log.subject_ids == []


def test_another_partners_token_for_our_therapist_is_refused_at_authentication(client, world):
    """Partner P2 cannot act for therapist T at all: its token for T is refused before any data."""
    forged = world.other_partner.headers(world.therapist)
    response = client.get(CLIENTS, **forged)
    assert response.status_code == 404
    assert response.json()["error"] == "Therapist not found or inactive"


def test_unauthenticated_is_401(client, world):
    for method, path in (("get", CLIENTS), ("get", ALERTS), ("get", OUTCOMES), ("post", WEBHOOK)):
        response = getattr(client, method)(path)
        assert response.status_code == 401, (path, response.content)


def test_client_model_count_sanity(world):
    assert Client.objects.count() == len(CASES)
