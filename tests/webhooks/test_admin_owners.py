"""Webhook admin (issue 14): owners by name with links (no N+1), searchable by name, readable owner-type
filter; a delivery's body and headers as the receiver got them; Redeliver on the delivery's page
(POST, CSRF, permission, audited); disabling endpoints behind a confirmation page."""

from __future__ import annotations

import ast
import hashlib
import html
import json
import re
from pathlib import Path

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Organization
from audit.models import AuditEvent
from integration.models import IntegrationPartner
from tests.webhooks.factories import attempt, publish, register
from webhooks import owners
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
ADMIN_DATETIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+")


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser(username="admin", email="a@example.com", password="x" * 16)
    client.force_login(user)
    return client


@pytest.fixture
def partner():
    return IntegrationPartner.objects.create(name="SuperTool")


@pytest.fixture
def organization():
    return Organization.objects.create(name="Harbour Physio")


def partner_endpoint(receiver, partner, **kwargs):
    endpoint, _ = register(receiver.url("/hook"), owner_type="integration_partner", owner_id=str(partner.pk), **kwargs)
    return endpoint


def org_endpoint(receiver, organization):
    endpoint, _ = register(
        receiver.url("/mark"),
        scheme="mark",
        events=("message.received",),
        owner_type="organization",
        owner_id=organization.public_id,
    )
    return endpoint


def changelist(client, model: str, **params):
    return client.get(reverse(f"admin:webhooks_{model}_changelist"), params)


def act(client, model: str, action: str, ids, **extra):
    url = reverse(f"admin:webhooks_{model}_changelist")
    return client.post(url, {"action": action, ACTION_CHECKBOX_NAME: [str(i) for i in ids], **extra})


# --- owners by name ---------------------------------------------------------------------------------


def test_lists_show_owner_names_linked_to_their_admin_pages(staff, receiver, enqueued, partner, organization):
    mine = partner_endpoint(receiver, partner)
    theirs = org_endpoint(receiver, organization)
    publish(mine)
    publish(theirs, event_type="message.received")
    partner_url = reverse("admin:integration_integrationpartner_change", args=[partner.pk])
    org_url = reverse("admin:accounts_organization_change", args=[organization.pk])
    for model in ("webhookendpoint", "webhookdelivery"):
        page = changelist(staff, model).content.decode()
        assert f'<a href="{partner_url}">SuperTool</a>' in page
        assert f'<a href="{org_url}">Harbour Physio</a>' in page
        assert "(LoveRescue integration partner)" in page and "(Organization)" in page
        assert f">{partner.pk}<" not in page  # no raw owner UUID column


def test_an_unknown_owner_shows_its_raw_id(staff, receiver, enqueued):
    register(receiver.url("/hook"), owner_type="integration_partner", owner_id="5b7f7f7e-0000-4000-8000-000000000000")
    register(receiver.url("/b"), owner_type="bench", owner_id="bench-7")
    page = changelist(staff, "webhookendpoint").content.decode()
    assert "5b7f7f7e-0000-4000-8000-000000000000" in page and "bench-7" in page


def _count_queries(client, model: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert changelist(client, model).status_code == 200
    return len(queries)


def test_owner_names_cost_one_query_per_owner_type_whatever_the_rows(staff, receiver, enqueued, monkeypatch):
    def add(count: int) -> None:
        for _ in range(count):
            partner = IntegrationPartner.objects.create(name=f"Partner {IntegrationPartner.objects.count()}")
            organization = Organization.objects.create(name=f"Org {Organization.objects.count()}")
            publish(partner_endpoint(receiver, partner))
            publish(org_endpoint(receiver, organization), event_type="message.received")

    add(1)  # 2 endpoints, 2 deliveries
    small = {model: _count_queries(staff, model) for model in ("webhookendpoint", "webhookdelivery")}
    add(9)  # 20 of each
    large = {model: _count_queries(staff, model) for model in ("webhookendpoint", "webhookdelivery")}
    assert large == small

    calls = []
    real = owners.resolve

    def counting(pairs):
        pairs = list(pairs)
        calls.append({owner_type for owner_type, _ in pairs})
        return real(pairs)

    monkeypatch.setattr(owners, "resolve", counting)
    changelist(staff, "webhookdelivery")
    assert calls == [{"integration_partner", "organization"}]  # once for the page, not once per row


def test_searching_a_partner_name_finds_its_endpoints_and_deliveries(staff, receiver, enqueued, partner, organization):
    mine = partner_endpoint(receiver, partner)
    other = partner_endpoint(receiver, IntegrationPartner.objects.create(name="OtherCorp"))
    theirs = org_endpoint(receiver, organization)
    mine_delivery = WebhookDelivery.objects.get(event=publish(mine))
    other_delivery = WebhookDelivery.objects.get(event=publish(other))

    endpoints = changelist(staff, "webhookendpoint", q="supertool").context["cl"].result_list
    assert [e.pk for e in endpoints] == [mine.pk]
    deliveries = changelist(staff, "webhookdelivery", q="SuperTool").context["cl"].result_list
    assert [d.pk for d in deliveries] == [mine_delivery.pk]
    assert other_delivery.pk not in [d.pk for d in deliveries]
    by_org = changelist(staff, "webhookendpoint", q="Harbour").context["cl"].result_list
    assert [e.pk for e in by_org] == [theirs.pk]
    by_public_id = changelist(staff, "webhookendpoint", q=other.public_id).context["cl"].result_list
    assert [e.pk for e in by_public_id] == [other.pk]  # the usual search still works


def test_owner_type_filter_offers_readable_labels(staff, receiver, enqueued, partner, organization):
    mine = partner_endpoint(receiver, partner)
    org_endpoint(receiver, organization)
    publish(mine)
    page = changelist(staff, "webhookendpoint").content.decode()
    assert "By owner type" in page and "LoveRescue integration partner" in page
    assert "?owner_type=integration_partner" in page
    filtered = changelist(staff, "webhookendpoint", owner_type="organization").context["cl"].result_list
    assert [e.owner_type for e in filtered] == ["organization"]
    deliveries = changelist(staff, "webhookdelivery", owner_type="integration_partner").context["cl"].result_list
    assert [d.endpoint_id for d in deliveries] == [mine.pk]


def test_one_owners_rows_by_link_with_the_owners_name(staff, receiver, enqueued, partner, organization):
    mine = partner_endpoint(receiver, partner)
    org_endpoint(receiver, organization)
    delivery = WebhookDelivery.objects.get(event=publish(mine))
    url = owners.changelist_url("webhookdelivery", owner_type="integration_partner", owner_id=str(partner.pk))
    response = staff.get(url)
    assert [d.pk for d in response.context["cl"].result_list] == [delivery.pk]
    assert "SuperTool (LoveRescue integration partner)" in response.content.decode()
    url = owners.changelist_url("webhookendpoint", owner_type="integration_partner", owner_id=str(partner.pk))
    assert [e.pk for e in staff.get(url).context["cl"].result_list] == [mine.pk]


def test_webhooks_never_imports_the_owner_apps():
    owner_apps = {"integration", "patients", "sync", "leads", "accounts", "sessions_analytics"}
    for path in (ROOT / "webhooks").rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not [n for n in names if n.split(".")[0] in owner_apps], f"{path} imports an owner app"


# --- a delivery's page ------------------------------------------------------------------------------


def test_delivery_page_shows_the_body_and_headers_as_the_receiver_got_them(staff, receiver, enqueued, partner):
    endpoint, secret = register(receiver.url("/hook"), owner_type="integration_partner", owner_id=str(partner.pk))
    delivery = WebhookDelivery.objects.get(event=publish(endpoint, payload={"alertId": "a-1", "note": "ü <b>"}))
    not_yet = staff.get(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk])).content.decode()
    assert "Not sent yet" in not_yet
    assert attempt(delivery) == "succeeded"
    got = receiver.requests[-1]

    page = staff.get(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk])).content.decode()
    shown = html.unescape(page)
    assert json.dumps(json.loads(got.body), indent=2, ensure_ascii=False) in shown  # pretty-printed
    assert got.body.decode() in shown  # and the exact bytes
    assert hashlib.sha256(got.body).hexdigest() in page
    assert "<b>" not in page.split("webhook-body")[1]  # escaped, never markup
    for name in ("X-LoveRescue-Signature", "webhook-signature", "webhook-id", "webhook-timestamp"):
        assert f"<th>{name}</th><td><code>{html.escape(got.headers[name])}</code>" in page
    assert secret not in page
    assert "SuperTool" in page


# --- redeliver from the delivery's page -------------------------------------------------------------


def _delivered(receiver, partner):
    endpoint = partner_endpoint(receiver, partner)
    delivery = WebhookDelivery.objects.get(event=publish(endpoint))
    assert attempt(delivery) == "succeeded"
    return delivery


def test_redeliver_button_queues_the_delivery_again_audited(
    staff, receiver, enqueued, partner, django_capture_on_commit_callbacks
):
    delivery = _delivered(receiver, partner)
    url = reverse("admin:webhooks_webhookdelivery_redeliver", args=[delivery.pk])
    page = staff.get(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk])).content.decode()
    assert f'action="{url}"' in page and ">Redeliver</button>" in page

    assert staff.get(url).status_code == 405  # never on a GET
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCEEDED

    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(url, follow=True)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempt_count == 0
    assert [call[0] for call in enqueued] == [delivery.pk]
    event = AuditEvent.objects.get(action="webhooks.deliveries_redelivered")
    assert event.actor_type == "user" and event.metadata["delivery_ids"] == [delivery.pk]
    message = [str(m) for m in response.context["messages"]][0]
    assert "queued again" in message and "SuperTool" in message and ADMIN_DATETIME.search(message)
    assert "+00:00" not in message


def test_redeliver_needs_csrf_and_the_change_permission(receiver, enqueued, partner, django_user_model):
    delivery = _delivered(receiver, partner)
    url = reverse("admin:webhooks_webhookdelivery_redeliver", args=[delivery.pk])
    viewer = django_user_model.objects.create_user(username="viewer", password="x" * 16, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_webhookdelivery"))
    client = Client()
    client.force_login(viewer)
    page = client.get(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]))
    assert page.status_code == 200 and b"Redeliver</button>" not in page.content
    assert client.post(url).status_code == 403

    admin_user = django_user_model.objects.create_superuser(username="boss", email="b@example.com", password="x" * 16)
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(admin_user)
    assert csrf_client.post(url).status_code == 403
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCEEDED
    assert not AuditEvent.objects.filter(action="webhooks.deliveries_redelivered").exists()


def test_redeliver_to_a_disabled_endpoint_says_why_not(staff, receiver, enqueued, partner):
    delivery = _delivered(receiver, partner)
    WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(is_active=False)
    page = staff.get(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk])).content.decode()
    assert "Endpoint disabled: enable it to redeliver" in page
    response = staff.post(reverse("admin:webhooks_webhookdelivery_redeliver", args=[delivery.pk]), follow=True)
    assert "was not queued" in [str(m) for m in response.context["messages"]][0]
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCEEDED


# --- disable with confirmation ----------------------------------------------------------------------


def test_disable_asks_first_saying_who_stops_receiving_what(staff, receiver, enqueued, partner):
    endpoint = partner_endpoint(receiver, partner, events=("alert.created", "consent.revoked"))
    publish(endpoint)
    publish(endpoint, event_type="consent.revoked")

    page = act(staff, "webhookendpoint", "disable_endpoints", [endpoint.pk])
    assert page.status_code == 200
    text = page.content.decode()
    assert "SuperTool (LoveRescue integration partner) stops receiving alert.created, consent.revoked" in text
    assert "2 pending deliveries will be marked failed" in text
    assert 'name="post" value="yes"' in text and 'value="disable_endpoints"' in text
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).is_active  # nothing changed yet
    assert not AuditEvent.objects.filter(action="webhooks.endpoint_disabled").exists()

    done = act(staff, "webhookendpoint", "disable_endpoints", [endpoint.pk], post="yes")
    assert done.status_code == 302
    assert not WebhookEndpoint.objects.get(pk=endpoint.pk).is_active
    assert WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.FAILED).count() == 2
    assert AuditEvent.objects.filter(action="webhooks.endpoint_disabled", actor_type="user").count() == 1

    again = act(staff, "webhookendpoint", "disable_endpoints", [endpoint.pk]).content.decode()
    assert "Already disabled since" in again and ADMIN_DATETIME.search(again)


def test_enable_needs_no_confirmation(staff, receiver, enqueued, partner):
    endpoint = partner_endpoint(receiver, partner)
    act(staff, "webhookendpoint", "disable_endpoints", [endpoint.pk], post="yes")
    response = act(staff, "webhookendpoint", "enable_endpoints", [endpoint.pk])
    assert response.status_code == 302 and WebhookEndpoint.objects.get(pk=endpoint.pk).is_active


def test_rotated_secret_page_names_the_owner_and_reads_its_times(staff, receiver, enqueued, partner):
    endpoint = partner_endpoint(receiver, partner)
    page = act(staff, "webhookendpoint", "rotate_secret", [endpoint.pk]).content.decode()
    assert "SuperTool (LoveRescue integration partner)" in page and ADMIN_DATETIME.search(page)


def test_the_partner_pages_delivery_link_still_filters(staff, receiver, enqueued, partner):
    mine = partner_endpoint(receiver, partner)
    other = partner_endpoint(receiver, IntegrationPartner.objects.create(name="OtherCorp"))
    delivery = WebhookDelivery.objects.get(event=publish(mine))
    publish(other)
    response = changelist(staff, "webhookdelivery", endpoint__id__in=str(mine.pk))
    assert response.status_code == 200
    assert [d.pk for d in response.context["cl"].result_list] == [delivery.pk]
