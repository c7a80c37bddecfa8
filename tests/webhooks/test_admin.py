"""Admin actions go through the services: rotate (secret shown once), disable/enable, recover, redeliver."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from tests.servers import Reply
from tests.webhooks.factories import attempt, make_due, publish, register
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser(username="admin", email="a@example.com", password="x" * 16)
    client.force_login(user)
    return client


def act(client, model: str, action: str, ids, **extra):
    url = reverse(f"admin:webhooks_{model}_changelist")
    return client.post(url, {"action": action, ACTION_CHECKBOX_NAME: [str(i) for i in ids], **extra})


def test_changelists_render(staff, receiver, enqueued):
    endpoint, secret = register(receiver.url("/hook"))
    delivery = WebhookDelivery.objects.get(event=publish(endpoint))
    attempt(delivery)
    for name in ("webhookendpoint", "webhookdelivery"):
        response = staff.get(reverse(f"admin:webhooks_{name}_changelist"))
        assert response.status_code == 200
    page = staff.get(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]))
    assert page.status_code == 200 and b"X-LoveRescue-Signature" in page.content
    endpoint_page = staff.get(reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]))
    assert endpoint_page.status_code == 200 and secret.encode() not in endpoint_page.content


def test_rotate_shows_the_new_secret_once(staff, receiver, enqueued):
    endpoint, old = register(receiver.url("/hook"))
    response = act(staff, "webhookendpoint", "rotate_secret", [endpoint.pk])
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.secret.encode() in response.content
    assert endpoint.previous_secret == old
    assert AuditEvent.objects.filter(action="webhooks.secret_rotated", actor_type="user").exists()
    listing = staff.get(reverse("admin:webhooks_webhookendpoint_changelist"))
    assert endpoint.secret.encode() not in listing.content  # not kept in messages or the session


def test_disable_enable_recover_and_redeliver(staff, receiver, enqueued):
    receiver.state["default"] = Reply(500, {}, b"")
    endpoint, _ = register(receiver.url("/hook"))
    delivery = WebhookDelivery.objects.get(event=publish(endpoint))
    for _ in range(5):
        make_due(delivery)
        attempt(delivery)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED

    act(staff, "webhookendpoint", "disable_endpoints", [endpoint.pk], post="yes")  # confirmed
    assert not WebhookEndpoint.objects.get(pk=endpoint.pk).is_active
    act(staff, "webhookendpoint", "enable_endpoints", [endpoint.pk])
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).is_active

    form = act(staff, "webhookendpoint", "recover_failed_deliveries", [endpoint.pk])
    assert form.status_code == 200 and b'name="since"' in form.content
    since = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    done = act(staff, "webhookendpoint", "recover_failed_deliveries", [endpoint.pk], apply="Recover", since=since)
    assert done.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempt_count == 0

    receiver.state["default"] = Reply(200, {}, b"")
    assert attempt(delivery) == "succeeded"
    act(staff, "webhookdelivery", "redeliver_selected", [delivery.pk])
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert AuditEvent.objects.filter(action="webhooks.deliveries_redelivered").exists()


def test_endpoint_list_cuts_the_id_with_the_full_id_on_hover(staff, receiver, enqueued):
    endpoint, _secret = register(receiver.url("/hook"))
    listing = staff.get(reverse("admin:webhooks_webhookendpoint_changelist")).content.decode()
    assert f'title="{endpoint.public_id}"' in listing and f">{endpoint.public_id}<" not in listing
    found = staff.get(reverse("admin:webhooks_webhookendpoint_changelist"), {"q": endpoint.public_id})
    assert f'title="{endpoint.public_id}"' in found.content.decode()
