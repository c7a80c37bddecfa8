"""Issue 10, finding 7 (LoveRescue and webhook registration): what a partner must not learn.

- A therapist-hidden journal entry flagged as a crisis still alerts the therapist, but the alert carries
  nothing of the entry: it is raised by the journal crisis batch, dated by the batch (not the entry's
  millisecond), and looks exactly like a crisis check-in's alert.
- A couple member who has not consented to this therapist is shown without their client id.
- Request bodies are strictly typed: `"text": 0` is not the string "0", an array is not an empty body.
- A refused webhook destination gets one message, whether its name does not resolve or resolves to a
  private address (no DNS oracle); the precise reason is logged.
- Both token answers and the webhook-secret answer are `Cache-Control: no-store`.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from audit.models import AuditEvent
from core.time import parse_instant, utc_now
from integration.models import Alert, CheckIn, JournalEntry, TherapistTask
from integration.services import alerts
from tests.integration.factories import CLIENT_PASSWORD, link, make_client, make_couple, make_partner, make_therapist
from tests.servers import StaticResolver
from webhooks import services as webhook_services
from webhooks.models import WebhookEndpoint, WebhookEvent

pytestmark = pytest.mark.django_db

APP = "/api/app"
LR = "/api/integration"


def platform_token(http, username: str) -> str:
    response = http.post(
        "/api/v1/auth/token", {"username": username, "password": CLIENT_PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


class Setting:
    """A therapist, their partner (with a webhook), and a client consented at FULL who uses the app."""

    def __init__(self, http):
        self.http = http
        self.therapist = make_therapist()
        self.partner = make_partner(therapists=[self.therapist])
        self.client = make_client("Jane", "Doe")
        link(self.therapist, self.client, "FULL")
        self.partner_headers = self.partner.headers(self.therapist)
        self.app_headers = {"HTTP_AUTHORIZATION": f"Bearer {platform_token(http, self.client.user.username)}"}
        WebhookEndpoint.objects.create(
            owner_type="integration_partner",
            owner_id=str(self.partner.partner.pk),
            url="https://hooks.partner.example/lr",
            secret="s" * 32,
            events=["alert.created", "alert.critical"],
            scheme="loverescue",
        )

    def app_post(self, path: str, body):
        return self.http.post(f"{APP}/{path}", json.dumps(body), content_type="application/json", **self.app_headers)

    def crisis_alerts(self) -> list[dict]:
        response = self.http.get(f"{LR}/alerts", {"type": "CRISIS"}, **self.partner_headers)
        assert response.status_code == 200, response.content
        return response.json()["alerts"]


@pytest.fixture
def setting(client):
    return Setting(client)


# --- (a) a hidden crisis entry: the alert stays, the inference goes ------------------------------------


def test_hidden_crisis_journal_entry_alerts_dated_by_the_batch_not_the_entry(setting):
    written = setting.app_post("journal", {"text": "I can't go on", "therapistHidden": True, "crisis": True})
    assert written.status_code == 201, written.content
    entry_time = parse_instant(written.json()["createdAt"])

    # Not at the entry's millisecond: nothing is raised by the write itself.
    assert setting.crisis_alerts() == []
    # Nor before the delay has passed.
    assert alerts.alerts_on_journal_crises(now=entry_time + alerts.JOURNAL_CRISIS_DELAY / 2) == []

    batch = entry_time + timedelta(minutes=1, seconds=7, milliseconds=321)
    assert len(alerts.alerts_on_journal_crises(now=batch)) == 1
    [shown] = setting.crisis_alerts()
    assert parse_instant(shown["createdAt"]) == batch.replace(microsecond=batch.microsecond // 1000 * 1000)
    assert shown["severity"] == "CRITICAL"  # the therapist is still told at once (SMS + email)
    entry_id = written.json()["id"]
    assert entry_id not in json.dumps(shown)
    # The webhook the partner receives says the same: batch time, no entry id.
    [event] = WebhookEvent.objects.filter(type="alert.created")
    payload = json.loads(event.body)
    assert payload["createdAt"] == shown["createdAt"] and entry_id not in event.body.decode()
    # The therapist was notified at once (safety), and a second batch finds nothing more to do.
    assert Alert.objects.get(pk=shown["id"]).recipients.get().notified_at is not None
    assert alerts.alerts_on_journal_crises(now=batch + timedelta(minutes=5)) == []


def test_a_hidden_entrys_alert_looks_like_a_visible_entrys_and_a_check_ins(setting):
    """Message and metadata are the same for every crisis source, so the alert does not say that a
    hidden entry (or the journal at all) raised it."""
    setting.app_post("journal", {"text": "hidden", "therapistHidden": True, "crisis": True})
    alerts.alerts_on_journal_crises(now=utc_now() + timedelta(minutes=2))
    other = make_client("Joan", "Roe")
    link(setting.therapist, other, "FULL")
    JournalEntry.objects.create(client=other, text="visible", crisis=True, created_at=utc_now())
    alerts.alerts_on_journal_crises(now=utc_now() + timedelta(minutes=3))
    checked_in = setting.app_post(
        "checkins", {"date": str(utc_now().date()), "mood": 2, "closeness": 2, "crisis": True}
    )
    assert checked_in.status_code == 201, checked_in.content

    shown = setting.crisis_alerts()
    assert len(shown) == 3
    assert {json.dumps([a["message"], a["metadata"], a["alertType"], a["severity"]]) for a in shown} == {
        json.dumps([alerts.rules.CRISIS_MESSAGE, {"source": "self_report"}, "CRISIS", "CRITICAL"])
    }


def test_the_batch_takes_each_flagged_entry_once_and_only_after_the_delay(setting):
    now = utc_now()
    old = JournalEntry.objects.create(
        client=setting.client, text="a", therapist_hidden=True, crisis=True, created_at=now - timedelta(minutes=5)
    )
    fresh = JournalEntry.objects.create(
        client=setting.client, text="b", therapist_hidden=True, crisis=True, created_at=now - timedelta(seconds=10)
    )
    JournalEntry.objects.create(client=setting.client, text="c", crisis=False, created_at=now - timedelta(minutes=5))
    [first] = alerts.alerts_on_journal_crises(now=now)
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert old.crisis_handled_at == now and fresh.crisis_handled_at is None
    assert first.created_at == now and first.episode_key == f"batch:{now.isoformat()}"
    assert alerts.alerts_on_journal_crises(now=now) == []
    [second] = alerts.alerts_on_journal_crises(now=now + timedelta(minutes=1))
    assert second.pk != first.pk
    assert not JournalEntry.objects.filter(crisis=True, crisis_handled_at__isnull=True).exists()


# --- (b) a withheld couple member reveals no id ---------------------------------------------------------


def test_withheld_couple_member_has_no_client_id(setting):
    john = make_client("John", "Doe")  # not linked to this therapist at all
    pending = make_client("Jill", "Doe")
    link(setting.therapist, pending, "FULL", consent=False)
    make_couple(setting.client, john)
    second = make_client("Jack", "Doe")
    link(setting.therapist, second, "BASIC")
    make_couple(second, pending)

    response = setting.http.get(f"{LR}/clients", **setting.partner_headers)
    assert response.status_code == 200, response.content
    by_id = {row["id"]: row for row in response.json()["clients"]}
    assert by_id[str(setting.client.pk)]["couple"]["partner2"] == {"id": None, "withheld": True}
    assert by_id[str(second.pk)]["couple"]["partner2"] == {"id": None, "withheld": True}
    assert by_id[str(setting.client.pk)]["couple"]["partner1"]["id"] == str(setting.client.pk)
    assert str(john.pk).encode() not in response.content and str(pending.pk).encode() not in response.content


# --- (c) strict types in every LoveRescue body ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("journal", {"text": 0, "therapistHidden": False}, "text"),
        ("journal", {"text": 12.5, "therapistHidden": True}, "text"),
        ("journal", {"text": ["words"], "therapistHidden": True}, "text"),
        ("journal", ["text"], "dictionary"),
        ("activities", {"date": "2026-01-01", "activity": 5}, "activity"),
        ("checkins", {"date": 20260101, "mood": 5, "closeness": 5}, "date"),
        ("assessments", {"type": 1, "score": {"score": 50}}, "type"),
    ],
)
def test_app_bodies_are_strictly_typed(setting, path, body, field):
    response = setting.app_post(path, body)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "BAD_REQUEST" and field in response.json()["error"]
    assert not JournalEntry.objects.exists() and not CheckIn.objects.exists()


@pytest.mark.parametrize("body", [[], ["x"], "x", 1, True])
def test_bodyless_posts_refuse_anything_but_an_object(setting, body):
    alert = Alert.objects.create(
        client=setting.client,
        alert_type="MILESTONE",
        severity="LOW",
        rule="test",
        episode_key="1",
        required_level="BASIC",
        message="m",
        created_at=utc_now(),
    )
    task = TherapistTask.objects.create(therapist=setting.therapist, client=setting.client, description="Read")
    read = setting.http.post(
        f"{LR}/alerts/{alert.pk}/read", json.dumps(body), content_type="application/json", **setting.partner_headers
    )
    done = setting.app_post(f"tasks/{task.pk}/complete", body)
    for response in (read, done):
        assert response.status_code == 400, response.content
        assert response.json()["code"] == "BAD_REQUEST"
    assert not alert.recipients.filter(read_at__isnull=False).exists()
    task.refresh_from_db()
    assert task.status != "completed"
    # An empty body and {} still work.
    ok = setting.http.post(
        f"{LR}/alerts/{alert.pk}/read", "", content_type="application/json", **setting.partner_headers
    )
    assert ok.status_code == 200, ok.content
    assert setting.app_post(f"tasks/{task.pk}/complete", {}).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"taskDescription": 0}, "taskDescription"),
        ({"taskDescription": "Read", "module": 5}, "module"),
        ({"taskDescription": "Read", "activities": [1, 2]}, "activities"),
        ({"taskDescription": "Read", "notes": 0}, "notes"),
        ({"taskDescription": "Read", "activities": "love_map_quiz"}, "activities"),
    ],
)
def test_assign_body_is_strictly_typed(setting, body, field):
    response = setting.http.post(
        f"{LR}/clients/{setting.client.pk}/assign",
        json.dumps(body),
        content_type="application/json",
        **setting.partner_headers,
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "BAD_REQUEST" and response.json()["error"].startswith(field)
    assert not TherapistTask.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"webhookUrl": 0, "events": ["alert.created"]}, "webhookUrl"),
        ({"webhookUrl": ["https://a.example/h"], "events": ["alert.created"]}, "webhookUrl"),
        ({"webhookUrl": "https://a.example/h", "events": [1]}, "events"),
    ],
)
def test_webhook_register_body_is_strictly_typed(setting, body, field):
    before = WebhookEndpoint.objects.count()
    response = setting.http.post(
        f"{LR}/webhook/register", json.dumps(body), content_type="application/json", **setting.partner_headers
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "BAD_REQUEST" and response.json()["error"].startswith(field)
    assert WebhookEndpoint.objects.count() == before


@pytest.mark.parametrize("field", ["apiKey", "apiSecret", "therapistId"])
def test_token_exchange_body_is_strictly_typed(setting, field):
    body = {
        "apiKey": setting.partner.api_key,
        "apiSecret": setting.partner.api_secret,
        "therapistId": str(setting.therapist.pk),
    }
    body[field] = 12345
    response = setting.http.post(f"{LR}/auth", json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.content
    # The spec's body, as for every other LoveRescue 400.
    assert response.json() == {"error": f"{field}: Not a valid string.", "code": "BAD_REQUEST"}


# --- (d) one answer for every refused webhook destination -----------------------------------------------


def test_webhook_registration_is_no_dns_oracle(setting, settings, monkeypatch, caplog):
    settings.WEBHOOK_REQUIRE_HTTPS = True
    resolver = StaticResolver({"internal.partner.example": "10.1.2.3", "public.partner.example": "93.184.216.34"})
    monkeypatch.setattr(webhook_services, "RESOLVER", resolver)
    before = WebhookEndpoint.objects.count()

    def register(url: str):
        return setting.http.post(
            f"{LR}/webhook/register",
            {"webhookUrl": url, "events": ["alert.created"]},
            content_type="application/json",
            **setting.partner_headers,
        )

    with caplog.at_level(logging.WARNING, logger="webhooks.endpoints"):
        answers = [
            register("https://nowhere.partner.example/h"),  # does not resolve
            register("https://internal.partner.example/h"),  # resolves to a private address
            register("https://10.1.2.3/h"),  # a private literal
            register("https://[fd00::1]/h"),
        ]
    assert resolver.calls == ["nowhere.partner.example", "internal.partner.example"]
    # Same status, same bytes, whatever the reason.
    assert len({(r.status_code, r.content) for r in answers}) == 1
    assert answers[0].status_code == 400
    assert answers[0].json() == {"error": webhook_services.endpoints.URL_REFUSED_MESSAGE, "code": "BAD_REQUEST"}
    assert WebhookEndpoint.objects.count() == before
    # The precise reason is for our log.
    logged = [record.getMessage() for record in caplog.records if record.name == "webhooks.endpoints"]
    assert any("nowhere.partner.example" in line and "unresolvable" in line for line in logged)
    assert any("internal.partner.example" in line and "not publicly routable" in line for line in logged)
    # A public destination is still accepted (the refusal is not blanket).
    assert register("https://public.partner.example/h").status_code == 200


# --- (e) token and secret answers are never cached ------------------------------------------------------


def test_token_and_secret_answers_are_no_store(setting, settings, monkeypatch):
    platform = setting.http.post(
        "/api/v1/auth/token",
        {"username": setting.client.user.username, "password": CLIENT_PASSWORD},
        content_type="application/json",
    )
    partner = setting.http.post(
        f"{LR}/auth",
        {
            "apiKey": setting.partner.api_key,
            "apiSecret": setting.partner.api_secret,
            "therapistId": str(setting.therapist.pk),
        },
        content_type="application/json",
    )
    monkeypatch.setattr(webhook_services, "RESOLVER", StaticResolver({"hooks.partner.example": "93.184.216.34"}))
    secret = setting.http.post(
        f"{LR}/webhook/register",
        {"webhookUrl": "https://hooks.partner.example/lr", "events": ["alert.created"]},
        content_type="application/json",
        **setting.partner_headers,
    )
    assert "access_token" in platform.json() and "token" in partner.json() and "webhookSecret" in secret.json()
    for response in (platform, partner, secret):
        assert response.status_code == 200, response.content
        assert response["Cache-Control"] == "no-store"
    assert AuditEvent.objects.filter(action="webhooks.endpoint_registered").exists()
