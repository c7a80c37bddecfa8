"""A partner's engineer following the LoveRescue spec's onboarding checklist, end to end: a live server,
a real Celery worker delivering webhooks to a receiver on 127.0.0.1, PostgreSQL and Redis.

Staff create the partner (`create_integration_partner ... --baa-signed --json`) -> the partner exchanges
its key for a token, registers its webhook (storing the secret) and lists its clients -> the client, in
the LoveRescue app, posts a crisis check-in -> the receiver gets `alert.created` and `alert.critical`,
verified here independently of the platform's code (hex HMAC-SHA256 of the raw body, like the spec's
Node snippet) -> the alert is listed, progress and session prep reflect it -> the client revokes consent
-> the very next partner request for that client is 403 NO_CONSENT and `consent.revoked` arrives -> an
expired token is 401 TOKEN_EXPIRED and re-authenticating works (checklist item 7).

Webhook deliveries (and the therapist's notifications) go through this test's own queue, consumed by a
worker process on this test's database (rows are committed: the live server needs transactional_db).
Without PostgreSQL / Redis the test skips locally and fails under CI (tests/conftest.skip_or_fail).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import time
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from celery import Celery
from django.core.management import call_command

from audit.models import AccessLog
from core.time import utc_now
from integration import tokens
from integration.models import Alert, PartnerCredential, TherapistClientLink
from messaging.models import OutboundMessage
from messaging.tasks import send_message
from tests.integration.factories import link, make_client, make_therapist
from tests.servers import LocalServer
from tests.workers import celery_worker, test_database_url
from webhooks import services as webhook_services

pytestmark = [pytest.mark.worker, pytest.mark.redis, pytest.mark.postgres]

TIMEOUT = 30.0
EVENTS = ["alert.created", "alert.critical", "milestone.achieved", "consent.revoked"]
CLIENT_PASSWORD = "journey-client-pass-123!"
NO_CONSENT = {"error": "Client has not granted consent to this therapist", "code": "NO_CONSENT"}


def verify_signature(raw_body: bytes, signature: str, secret: str) -> bool:
    """The spec's Node.js verifySignature, in Python: hex HMAC-SHA256 of the raw body, constant time."""
    expected = hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(bytes.fromhex(signature), bytes.fromhex(expected))


@pytest.fixture
def worker_queue(transactional_db, require_postgres, redis_url, settings, tmp_path, monkeypatch):
    """A worker process consuming a queue of this test's own; webhook deliveries and outbound messages
    published by the live server (a thread of this process) are routed to it."""
    import redis

    settings.WEBHOOK_REQUIRE_HTTPS = False  # the receiver is http://127.0.0.1:port
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    monkeypatch.setattr(webhook_services, "RESOLVER", None)
    queue = f"loverescue-e2e-{uuid.uuid4().hex}"
    producer = Celery("loverescue-e2e-producer", broker=redis_url, set_as_current=False)
    monkeypatch.setattr(
        webhook_services, "_enqueue",
        lambda delivery_id, countdown=None: producer.send_task(
            "webhooks.tasks.deliver_webhook", args=[delivery_id], queue=queue, countdown=countdown),
    )  # fmt: skip

    def send_message_to_queue(args=None, kwargs=None, countdown=None, **options):
        producer.send_task(
            "messaging.tasks.send_message", args=args, kwargs=kwargs, queue=queue, countdown=countdown
        )  # kwargs: a wake-up's drain=True

    monkeypatch.setattr(send_message, "apply_async", send_message_to_queue)
    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings", APP_ENV="test", OUTBOUND_ALLOW_LOOPBACK="true",
        WEBHOOK_REQUIRE_HTTPS="false", MESSAGING_BACKEND="console", DATABASE_URL=test_database_url(),
        REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url, CELERY_BROKER_DIR=str(tmp_path / "broker"),
        PYTHONUNBUFFERED="1",
    )  # fmt: skip
    log_path = tmp_path / "worker.log"
    client = redis.Redis.from_url(redis_url)
    try:
        with celery_worker(env, log_path, queue, loglevel="info", name="loverescue-e2e") as worker:
            worker.log_path = log_path
            yield worker
    finally:
        producer.close()
        client.delete(queue, f"_kombu.binding.{queue}")
        client.close()


def wait_for(condition, what: str, worker):
    """Poll `condition()` until it returns something truthy, up to TIMEOUT seconds; fail with the
    worker's log otherwise (or at once if the worker died)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        result = condition()
        if result:
            return result
        if worker.poll() is not None:
            pytest.fail(f"worker exited with {worker.returncode}:\n{worker.log_path.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {TIMEOUT:.0f}s waiting for {what}; worker log:\n"
                f"{worker.log_path.read_text(errors='replace')[-5000:]}"
            )
        time.sleep(0.1)


def received(receiver: LocalServer, event: str) -> list:
    return [r for r in receiver.requests if r.headers.get("X-LoveRescue-Event") == event]


def check_delivery(request, secret: str, event: str) -> dict:
    """One webhook POST as the partner's receiver must check it; returns the parsed payload."""
    assert request.method == "POST"
    assert request.path == "/hooks/loverescue"
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.headers["X-LoveRescue-Event"] == event
    assert verify_signature(request.body, request.headers["X-LoveRescue-Signature"], secret)
    assert not verify_signature(request.body + b" ", request.headers["X-LoveRescue-Signature"], secret)
    stamp = request.headers["X-LoveRescue-Timestamp"]
    assert stamp.endswith("Z")
    assert abs(datetime.fromisoformat(stamp.replace("Z", "+00:00")) - utc_now()) < timedelta(minutes=5)
    return json.loads(request.body)


def test_partner_onboarding_journey(live_server, worker_queue):
    worker = worker_queue
    therapist = make_therapist("Tess", "Quillfeather", email="tess@example.com", phone="+14155550100")
    client = make_client(
        "Juniper", "Zebrafinch", username="juniper", password=CLIENT_PASSWORD, email="juniper.zebrafinch@example.org"
    )
    therapist_link = link(therapist, client, "STANDARD")
    personal = [b"Juniper", b"Zebrafinch", b"juniper.zebrafinch", b"Quillfeather"]  # never in a webhook body

    # Checklist 1-3: BAA signed, key and secret issued by staff (shown once).
    out = io.StringIO()
    call_command(
        "create_integration_partner",
        "SuperTool",
        "--therapist",
        str(therapist.pk),
        "--baa-signed",
        "--json",
        stdout=out,
    )
    issued = json.loads(out.getvalue())
    api_key, api_secret = issued["apiKey"], issued["apiSecret"]
    assert api_key.startswith("lr_int_") and api_secret.startswith("sk_live_")

    with LocalServer() as receiver, httpx.Client(base_url=live_server.url, timeout=10) as http:
        # Checklist 4: the token exchange.
        auth = http.post(
            "/api/integration/auth", json={"apiKey": api_key, "apiSecret": api_secret, "therapistId": str(therapist.pk)}
        )
        assert auth.status_code == 200, auth.text
        assert auth.json()["expiresIn"] == 3600 and auth.json()["tokenType"] == "Bearer"
        partner = {"Authorization": f"Bearer {auth.json()['token']}"}

        # Checklist 5-6: register the webhook, store its secret.
        hook_url = receiver.url("/hooks/loverescue")
        registered = http.post(
            "/api/integration/webhook/register", headers=partner, json={"webhookUrl": hook_url, "events": EVENTS}
        )
        assert registered.status_code == 200, registered.text
        assert registered.json()["message"] == "Webhook registered successfully"
        assert registered.json()["webhookUrl"] == hook_url and registered.json()["events"] == EVENTS
        webhook_secret = registered.json()["webhookSecret"]
        assert len(webhook_secret) >= 32 and bytes.fromhex(webhook_secret)

        listed = http.get("/api/integration/clients", headers=partner)
        assert listed.status_code == 200, listed.text
        assert listed.headers["X-RateLimit-Limit"] == "100"  # the spec's default: no --rate-limit given
        assert int(listed.headers["X-RateLimit-Remaining"]) < 100
        assert listed.json()["total"] == 1
        (row,) = listed.json()["clients"]
        assert (row["id"], row["linkId"], row["permissionLevel"]) == (
            str(client.pk),
            str(therapist_link.pk),
            "STANDARD",
        )
        assert row["unreadAlerts"] == 0

        # The client, in the LoveRescue app: a platform token, then a check-in flagging a crisis.
        login = http.post("/api/v1/auth/token", json={"username": "juniper", "password": CLIENT_PASSWORD})
        assert login.status_code == 200, login.text
        app = {"Authorization": f"Bearer {login.json()['access_token']}"}
        today = utc_now().date().isoformat()
        checkin = http.post(
            "/api/app/checkins", headers=app, json={"date": today, "mood": 2, "closeness": 3, "crisis": True}
        )
        assert checkin.status_code in (200, 201), checkin.text

        # The receiver gets both events of the one CRISIS alert, signed with the stored secret.
        wait_for(
            lambda: received(receiver, "alert.created") and received(receiver, "alert.critical"),
            "alert.created and alert.critical at the receiver",
            worker,
        )
        assert not receiver.errors
        (created,) = received(receiver, "alert.created")
        (critical,) = received(receiver, "alert.critical")
        alerts = [
            check_delivery(created, webhook_secret, "alert.created"),
            check_delivery(critical, webhook_secret, "alert.critical"),
        ]
        for payload in alerts:
            assert payload["clientId"] == str(client.pk)
            assert (payload["alertType"], payload["severity"]) == ("CRISIS", "CRITICAL")
            assert payload["message"]
        for delivery in (created, critical):
            for value in personal:
                assert value.lower() not in delivery.body.lower()
        alert_id = alerts[0]["alertId"]
        assert alerts[1]["alertId"] == alert_id
        assert Alert.objects.filter(pk=alert_id, client=client, alert_type="CRISIS").exists()

        # CRITICAL: the therapist is told at once, by SMS and by email (sent by the worker).
        notified = wait_for(
            lambda: (
                (msgs := list(OutboundMessage.objects.filter(status="sent")))
                and {m.channel for m in msgs} >= {"sms", "email"}
                and msgs
            ),
            "the therapist's SMS and email about the crisis",
            worker,
        )
        assert {m.recipient for m in notified} >= {"+14155550100", "tess@example.com"}
        for message in notified:
            assert "Zebrafinch" not in message.body and "Zebrafinch" not in (message.subject or "")

        # The alert, as the partner lists it.
        listed_alerts = http.get("/api/integration/alerts", headers=partner)
        assert listed_alerts.status_code == 200, listed_alerts.text
        body = listed_alerts.json()
        (alert,) = [a for a in body["alerts"] if a["id"] == alert_id]
        assert (alert["clientId"], alert["alertType"], alert["severity"], alert["readAt"]) == (
            str(client.pk),
            "CRISIS",
            "CRITICAL",
            None,
        )
        assert alert["client"] == {"id": str(client.pk), "firstName": "Juniper", "lastName": "Zebrafinch"}
        assert body["total"] == len(body["alerts"]) and body["unreadCount"] == body["total"] >= 1
        crisis_only = http.get("/api/integration/alerts", headers=partner, params={"type": "CRISIS"}).json()
        assert [a["id"] for a in crisis_only["alerts"]] == [alert_id]
        clients_now = http.get("/api/integration/clients", headers=partner).json()
        assert clients_now["clients"][0]["unreadAlerts"] == body["unreadCount"]
        assert clients_now["clients"][0]["latestMood"] == 2

        progress = http.get(f"/api/integration/clients/{client.pk}/progress", headers=partner)
        assert progress.status_code == 200, progress.text
        assert progress.json()["clientId"] == str(client.pk)
        assert {"date": today, "mood": 2, "closeness": 3} in progress.json()["moodTrends"]
        assert "journalEntries" not in progress.json()  # FULL only

        prep = http.get(f"/api/integration/clients/{client.pk}/session-prep", headers=partner)
        assert prep.status_code == 200, prep.text
        report = prep.json()["report"]
        assert {
            "activitiesCompleted",
            "assessmentChanges",
            "moodTrends",
            "crisisFlags",
            "generatedSummary",
            "expertInsights",
        } <= set(report)
        assert (report["clientId"], report["therapistId"]) == (str(client.pk), str(therapist.pk))
        assert report["crisisFlags"], "the crisis check-in is in the report's window"
        assert report["moodTrends"]["average"] == 2

        # The client revokes consent in the app; the very next partner request is refused.
        links = http.get("/api/app/therapist-links", headers=app)
        assert links.status_code == 200, links.text
        assert str(therapist_link.pk) in links.text
        revoked = http.patch(f"/api/app/therapist-links/{therapist_link.pk}", headers=app, json={"consent": "revoked"})
        assert revoked.status_code == 200, revoked.text
        refused = http.get(f"/api/integration/clients/{client.pk}/progress", headers=partner)
        assert (refused.status_code, refused.json()) == (403, NO_CONSENT)
        prep_refused = http.get(f"/api/integration/clients/{client.pk}/session-prep", headers=partner)
        assert (prep_refused.status_code, prep_refused.json()) == (403, NO_CONSENT)
        assert http.get("/api/integration/clients", headers=partner).json() == {"clients": [], "total": 0}
        assert http.get("/api/integration/alerts", headers=partner).json()["total"] == 0
        TherapistClientLink.objects.get(pk=therapist_link.pk, consent_revoked_at__isnull=False)

        (revocation,) = wait_for(lambda: received(receiver, "consent.revoked"), "consent.revoked", worker)
        payload = check_delivery(revocation, webhook_secret, "consent.revoked")
        assert payload["clientId"] == str(client.pk)
        for value in personal:
            assert value.lower() not in revocation.body.lower()

        # Checklist 7: an expired token is 401 TOKEN_EXPIRED; re-authenticating gets a working one.
        credential = PartnerCredential.objects.get(partner__name="SuperTool")
        expired = tokens.issue_token(
            partner_id=credential.partner_id,
            credential_id=credential.pk,
            therapist_id=therapist.pk,
            now=utc_now() - timedelta(hours=2),
        )
        stale = http.get("/api/integration/clients", headers={"Authorization": f"Bearer {expired}"})
        assert stale.status_code == 401
        assert stale.json()["code"] == "TOKEN_EXPIRED"
        again = http.post(
            "/api/integration/auth", json={"apiKey": api_key, "apiSecret": api_secret, "therapistId": str(therapist.pk)}
        )
        assert again.status_code == 200, again.text
        fresh = http.get("/api/integration/clients", headers={"Authorization": f"Bearer {again.json()['token']}"})
        assert fresh.status_code == 200

    # HIPAA audit: the refused request is in the access log with the client it was about.
    progress_path = f"/api/integration/clients/{client.pk}/progress"
    logged = {(row.status_code, tuple(row.subject_ids)) for row in AccessLog.objects.filter(path=progress_path)}
    assert logged == {(200, (f"client:{client.pk}",)), (403, (f"client:{client.pk}",))}
    assert len(receiver.requests) == 3  # nothing else was sent (no milestone, no duplicate)
