"""What a new alert sends: partner webhooks (alert.created / alert.critical / milestone.achieved) and
therapist notifications by severity through messaging (docs/loverescue.md "Notifications")."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from core.actors import Actor
from core.time import iso_utc, utc_now
from integration import tasks
from integration.models import ActivityEntry, AlertRecipient, CheckIn, IntegrationPartner, TherapistClientLink
from integration.services import alerts
from messaging.models import OutboundMessage
from tests.integration.factories import link, make_client, make_partner, make_therapist
from tests.servers import StaticResolver
from webhooks import services as webhook_services
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db

D = date(2026, 1, 1)
EVENTS = ["alert.created", "alert.critical", "milestone.achieved"]


@pytest.fixture(autouse=True)
def _resolver(monkeypatch):
    monkeypatch.setattr(webhook_services, "RESOLVER", StaticResolver({"hooks.example.com": "93.184.216.34"}))


def register(partner, path="/x"):
    endpoint, _ = webhook_services.webhook_endpoint_register(
        owner_type="integration_partner",
        owner_id=str(partner.partner.pk),
        url=f"https://hooks.example.com{path}",
        events=EVENTS,
        scheme="loverescue",
        actor=Actor.system("tests"),
    )
    return endpoint


def deliveries(endpoint) -> list[tuple[str, dict]]:
    rows = WebhookDelivery.objects.filter(endpoint=endpoint).select_related("event").order_by("pk")
    return [(row.event.type, json.loads(row.event.payload)) for row in rows]


def crisis(client, on=D):
    row = CheckIn.objects.create(client=client, date=on, mood=2, closeness=2, crisis=True)
    [alert] = alerts.alerts_on_checkin(checkin=row)
    return alert


def risk(client):
    for n in range(7):
        CheckIn.objects.create(client=client, date=D + timedelta(days=n), mood=8, closeness=5)
    created = []
    for n in range(7, 12):
        row = CheckIn.objects.create(client=client, date=D + timedelta(days=n), mood=2, closeness=5)
        created += alerts.alerts_on_checkin(checkin=row)
    [alert] = created
    return alert


def messages(**filters):
    return list(OutboundMessage.objects.filter(**filters).order_by("pk"))


# --- Webhooks -----------------------------------------------------------------------------------------------


def test_critical_alert_publishes_created_and_critical_to_the_therapists_partner():
    therapist, other_therapist = make_therapist("T"), make_therapist("O")
    client = make_client("Jane", "Doe")
    link(therapist, client, "STANDARD")
    mine = register(make_partner(therapists=[therapist]))
    theirs = register(make_partner(therapists=[other_therapist]), "/other")

    alert = crisis(client)

    sent = deliveries(mine)
    assert [event for event, _ in sent] == ["alert.created", "alert.critical"]
    expected = {
        "alertId": str(alert.id),
        "clientId": str(client.id),
        "therapistId": str(therapist.id),
        "alertType": "CRISIS",
        "severity": "CRITICAL",
        "message": "Crisis pathway triggered — safety plan activation recommended",
        "metadata": {"source": "self_report"},
        "createdAt": iso_utc(alert.created_at),
    }
    assert all(payload == expected for _, payload in sent)
    assert "Jane" not in json.dumps(sent) and "Doe" not in json.dumps(sent)
    assert deliveries(theirs) == []


def test_basic_link_gets_no_risk_webhook_but_gets_milestones():
    therapist = make_therapist()
    client = make_client()
    link(therapist, client, "BASIC")
    endpoint = register(make_partner(therapists=[therapist]))

    risk(client)
    assert deliveries(endpoint) == []

    [milestone] = alerts.alerts_on_week_completed(client=client, week_number=2)
    sent = deliveries(endpoint)
    assert [event for event, _ in sent] == ["alert.created", "milestone.achieved"]
    assert sent[0][1]["metadata"] == {"milestone": "week_completed", "weekNumber": 2}
    assert sent[0][1]["alertId"] == str(milestone.id)


def test_a_partner_of_two_therapists_gets_one_event_per_therapist():
    t1, t2 = make_therapist("A"), make_therapist("B")
    client = make_client()
    link(t1, client, "FULL")
    link(t2, client, "STANDARD")
    endpoint = register(make_partner(therapists=[t1, t2]))

    risk(client)

    sent = deliveries(endpoint)
    assert [event for event, _ in sent] == ["alert.created", "alert.created"]
    assert {payload["therapistId"] for _, payload in sent} == {str(t1.id), str(t2.id)}


def test_no_webhook_for_a_revoked_link_or_a_suspended_partner():
    therapist = make_therapist()
    client = make_client()
    link(therapist, client, "FULL", revoked=True)
    endpoint = register(make_partner(therapists=[therapist]))
    crisis(client)
    assert deliveries(endpoint) == []

    other = make_client()
    link(therapist, other, "FULL")
    IntegrationPartner.objects.filter(pk=endpoint.owner_id).update(status="suspended")
    crisis(other)
    assert deliveries(endpoint) == []


# --- Notifications --------------------------------------------------------------------------------------


def test_critical_is_sms_and_email_at_once_without_details():
    therapist = make_therapist(email="tess@example.com", phone="+14155550100")
    client = make_client("Jane", "Doe")
    link(therapist, client, "STANDARD")

    alert = crisis(client)

    sent = messages(purpose="integration.alert_critical")
    assert sorted((m.channel, m.recipient) for m in sent) == [("email", "tess@example.com"), ("sms", "+14155550100")]
    sms = next(m for m in sent if m.channel == "sms")
    assert sms.body == "LoveRescue: 1 critical alert needs your attention. Open LoveRescue to review."
    for message in sent:
        assert "Jane" not in message.body + message.subject and "mood" not in message.body.lower()
    assert AlertRecipient.objects.get(alert=alert).notified_at is not None
    # The batch tasks never send it again.
    assert alerts.alert_notifications_send_high() == 0 and alerts.alert_notifications_send_digest() == 0
    assert len(messages()) == 2


def test_a_channel_is_skipped_without_contact_details_and_inactive_therapists_get_nothing():
    no_phone = make_therapist("N", phone=None)
    inactive = make_therapist("I", active=False, email="inactive@example.com")
    client = make_client()
    link(no_phone, client, "STANDARD")
    link(inactive, client, "STANDARD")

    crisis(client)

    assert [(m.channel, m.recipient) for m in messages()] == [("email", "tess@example.com")]


def test_medium_is_one_email_at_once():
    therapist = make_therapist(email="med@example.com")
    client = make_client()
    link(therapist, client, "BASIC")
    ActivityEntry.objects.create(client=client, date=D, activity="x")

    assert alerts.alerts_evaluate_daily(today=D + timedelta(days=7)) == 1

    [email] = messages()
    assert (email.channel, email.recipient, email.purpose) == ("email", "med@example.com", "integration.alert_medium")
    assert alerts.alerts_evaluate_daily(today=D + timedelta(days=8)) == 0
    assert len(messages()) == 1


def test_high_waits_for_the_batch_task_and_is_sent_once():
    therapist = make_therapist(email="high@example.com")
    a, b = make_client(), make_client()
    link(therapist, a, "STANDARD")
    link(therapist, b, "FULL")
    risk(a)
    risk(b)
    assert messages() == []

    assert tasks.send_high_alert_notifications() == 1
    [email] = messages()
    assert (email.channel, email.recipient, email.purpose) == ("email", "high@example.com", "integration.alert_high")
    assert email.subject == "LoveRescue: 2 high-priority alerts"
    assert email.body.startswith("LoveRescue: 2 high-priority alerts need your attention.")
    assert not AlertRecipient.objects.filter(notified_at__isnull=True).exists()

    assert tasks.send_high_alert_notifications() == 0
    assert len(messages()) == 1


def test_high_is_not_sent_after_consent_is_revoked_or_lowered():
    revoked, lowered = make_therapist("R", email="r@example.com"), make_therapist("L", email="l@example.com")
    client = make_client()
    link(revoked, client, "STANDARD")
    link(lowered, client, "FULL")
    risk(client)
    TherapistClientLink.objects.filter(therapist=revoked).update(consent_revoked_at=utc_now())
    TherapistClientLink.objects.filter(therapist=lowered).update(permission_level="BASIC")

    assert alerts.alert_notifications_send_high() == 0
    assert messages() == []
    assert not AlertRecipient.objects.filter(notified_at__isnull=True).exists()


def test_low_goes_in_one_daily_digest_once():
    therapist = make_therapist(email="low@example.com")
    client = make_client()
    link(therapist, client, "BASIC")
    alerts.alerts_on_week_completed(client=client, week_number=1)
    alerts.alerts_on_week_completed(client=client, week_number=2)
    assert alerts.alert_notifications_send_high() == 0
    assert messages() == []

    assert tasks.send_low_alert_digest() == 1
    [email] = messages()
    assert email.subject == "LoveRescue daily digest: 2 new updates"
    assert email.purpose == "integration.alert_digest"
    assert tasks.send_low_alert_digest() == 0
    assert len(messages()) == 1


def test_daily_evaluation_task_runs_the_rules(monkeypatch):
    seen = {}
    monkeypatch.setattr(alerts, "alerts_evaluate_daily", lambda **kw: seen.setdefault("called", 3))
    assert tasks.evaluate_daily_alerts() == 3
    assert tasks.evaluate_daily_alerts.name == "integration.tasks.evaluate_daily_alerts"
