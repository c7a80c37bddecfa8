"""Outbox admin: masked recipient, no body anywhere, search through the blind index, audited retry."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from messaging.models import OutboundMessage, mask_recipient
from tests.fixtures.messaging import BODY, EMAIL, PHONE, queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    user = get_user_model().objects.create_superuser("staffer", "staffer@example.com", "a-long-admin-password")
    client = Client()
    client.force_login(user)
    return user, client


def test_masking():
    assert mask_recipient("sms", PHONE) == "+44\u2022\u2022\u2022\u2022\u2022\u20223456"
    assert mask_recipient("email", EMAIL) == "p\u2022\u2022\u2022@example.org"
    assert mask_recipient("sms", "+12345") == "\u2022" * 6


def test_list_shows_masked_recipient_and_no_body(staff):
    _, client = staff
    message = queue(channel="sms", recipient=PHONE, body=BODY)
    html = client.get(reverse("admin:messaging_outboundmessage_changelist")).content.decode()
    assert message.public_id in html
    assert mask_recipient("sms", PHONE) in html
    assert PHONE[1:] not in html and "Quillfeather" not in html


def test_list_shows_channel_and_status_in_one_column(staff):
    _, client = staff
    queue(channel="sms", recipient=PHONE, body=BODY)
    response = client.get(reverse("admin:messaging_outboundmessage_changelist"))
    assert "SMS: Queued" in response.content.decode()
    # Four columns (issue 14: the list fits a 1,400 px window beside the filters; the rest is on the page).
    assert response.context["cl"].list_display[1:] == ["public_id", "channel_status", "masked_recipient", "created_at"]


def test_change_page_is_read_only_and_masked(staff):
    _, client = staff
    message = queue(channel="email", recipient=EMAIL, subject="Confidential results", body=BODY)
    response = client.get(reverse("admin:messaging_outboundmessage_change", args=[message.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert message.public_id in html and f"(hidden, {len(BODY)} characters)" in html
    assert EMAIL not in html and "Quillfeather" not in html and "Confidential" not in html
    assert 'name="body"' not in html and 'name="recipient"' not in html


def test_no_add_or_delete(staff):
    _, client = staff
    message = queue()
    assert client.get(reverse("admin:messaging_outboundmessage_add")).status_code == 403
    assert client.get(reverse("admin:messaging_outboundmessage_delete", args=[message.pk])).status_code == 403


def test_search_by_full_number_uses_the_blind_index(staff):
    _, client = staff
    mine = queue(recipient=PHONE)
    other = queue(recipient="+14155550123")
    url = reverse("admin:messaging_outboundmessage_changelist")
    html = client.get(url, {"q": "+44 7911 123456"}).content.decode()
    assert mine.public_id in html and other.public_id not in html
    html = client.get(url, {"q": other.public_id}).content.decode()
    assert other.public_id in html and mine.public_id not in html


def test_retry_failed_action_requeues_through_the_service(staff, enqueued):
    user, client = staff
    failed = queue()
    sent = queue()
    OutboundMessage.objects.filter(pk=failed.pk).update(
        status="failed", attempts=5, last_error="twilio_http_500", provider_message_id="SM" + "0" * 32
    )
    OutboundMessage.objects.filter(pk=sent.pk).update(status="sent")
    enqueued.clear()
    response = client.post(
        reverse("admin:messaging_outboundmessage_changelist"),
        {"action": "retry_failed", "_selected_action": [failed.pk, sent.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "1 message(s) queued again." in response.content.decode()
    failed.refresh_from_db()
    sent.refresh_from_db()
    assert failed.status == "queued" and failed.attempts == 0 and failed.provider_message_id == ""
    assert sent.status == "sent"
    event = AuditEvent.objects.get(action="messaging.message_retried")
    assert (event.actor_type, event.actor_id, event.subject_id) == ("user", str(user.pk), failed.public_id)
    assert event.metadata["previous_attempts"] == 5


def test_the_change_page_is_view_only_and_a_post_writes_nothing(staff):
    _, client = staff
    message = queue()
    OutboundMessage.objects.filter(pk=message.pk).update(status="sent", attempts=1)
    before = OutboundMessage.objects.values("status", "attempts", "updated_at").get(pk=message.pk)
    url = reverse("admin:messaging_outboundmessage_change", args=[message.pk])
    assert 'type="submit"' not in client.get(url).content.decode().split('id="content-main"')[1]
    assert client.post(url, {"_save": "Save"}).status_code == 403
    assert OutboundMessage.objects.values("status", "attempts", "updated_at").get(pk=message.pk) == before


def test_retry_needs_the_change_permission(enqueued):
    viewer = get_user_model().objects.create_user("viewer", password="a-long-viewer-password", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_outboundmessage"))
    client = Client()
    client.force_login(viewer)
    failed = queue()
    OutboundMessage.objects.filter(pk=failed.pk).update(status="failed", attempts=5)
    url = reverse("admin:messaging_outboundmessage_changelist")
    assert "retry_failed" not in client.get(url).content.decode()
    client.post(url, {"action": "retry_failed", "_selected_action": [failed.pk]})
    failed.refresh_from_db()
    assert failed.status == "failed" and not AuditEvent.objects.filter(action="messaging.message_retried").exists()
