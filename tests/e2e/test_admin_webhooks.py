"""Browser walk of the webhook and beat admin (issue 14): find a partner's deliveries by the partner's
name, open one and read its body as sent, Redeliver it from its page, disable the endpoint through its
confirmation page; disable a beat task and find the audit event. A screenshot after each step
(.local/screenshots/)."""

from __future__ import annotations

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from audit.models import AuditEvent
from integration.models import IntegrationPartner
from tests.e2e.conftest import WAIT_SECONDS, submit_and_wait
from tests.servers import LocalServer
from tests.webhooks.factories import attempt, publish, register
from webhooks import services
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def enqueued(settings, monkeypatch):
    """Deliveries handed to the broker are recorded instead (the live server runs in this process)."""
    settings.WEBHOOK_REQUIRE_HTTPS = False
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    monkeypatch.setattr(services, "RESOLVER", None)
    calls: list[int] = []
    monkeypatch.setattr(services, "_enqueue", lambda delivery_id, countdown=None: calls.append(delivery_id))
    return calls


def wait_for(browser, css: str):
    return WebDriverWait(browser, WAIT_SECONDS).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def assert_columns_fit(browser) -> None:
    """Every list column on screen at 1,400 px (issue 14): the results table needs no sideways scroll."""
    overflow = browser.execute_script(
        "const r = document.querySelector('#changelist .results'); return r.scrollWidth - r.clientWidth;"
    )
    assert overflow <= 0, f"the list is {overflow}px wider than its box"


def message_text(browser) -> str:
    return wait_for(browser, ".messagelist").text


def test_webhook_delivery_redeliver_and_disable(live_server, browser, staff_login, shot, enqueued):
    partner = IntegrationPartner.objects.create(name="SuperTool")
    other = IntegrationPartner.objects.create(name="OtherCorp")
    with LocalServer() as receiver:
        endpoint, secret = register(receiver.url("/hook"), owner_type="integration_partner", owner_id=str(partner.pk))
        other_endpoint, _ = register(receiver.url("/o"), owner_type="integration_partner", owner_id=str(other.pk))
        delivery = WebhookDelivery.objects.get(event=publish(endpoint, payload={"alertId": "a-77", "severity": "HIGH"}))
        publish(other_endpoint)
        assert attempt(delivery) == "succeeded"

    staff_login()
    shot("logged-in")

    browser.get(f"{live_server.url}/admin/webhooks/webhookdelivery/")
    search = wait_for(browser, "#searchbar")
    search.send_keys("SuperTool")
    search.submit()
    rows = WebDriverWait(browser, WAIT_SECONDS).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "#result_list tbody tr") if "q=SuperTool" in b.current_url else None
    )
    assert len(rows) == 1 and "SuperTool" in rows[0].text and "OtherCorp" not in browser.page_source
    assert_columns_fit(browser)
    shot("deliveries-found-by-partner-name")

    rows[0].find_element(By.CSS_SELECTOR, "th a").click()
    body = wait_for(browser, "pre.webhook-body")
    assert '"alertId": "a-77"' in body.text
    assert "X-LoveRescue-Signature" in wait_for(browser, "table.webhook-headers").text
    assert secret not in browser.page_source
    shot("delivery-body-as-sent")

    submit_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "#redeliver-form button"))
    assert "queued again" in message_text(browser)
    assert delivery.pk in enqueued
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.PENDING
    shot("redelivered")

    browser.get(f"{live_server.url}/admin/webhooks/webhookendpoint/?q=SuperTool")
    wait_for(browser, f"input.action-select[value='{endpoint.pk}']").click()
    assert_columns_fit(browser)
    shot("endpoints-found-by-partner-name")
    Select(browser.find_element(By.NAME, "action")).select_by_value("disable_endpoints")
    submit_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "button[name='index']"))
    consequences = wait_for(browser, "#confirm-action").text
    assert "SuperTool (LoveRescue integration partner) stops receiving alert.created" in consequences
    assert "1 pending delivery will be marked failed" in consequences
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).is_active
    shot("disable-confirmation")

    submit_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "#confirm-action input[type='submit']"))
    assert "Disabled 1 endpoint(s)." in message_text(browser)
    assert not WebhookEndpoint.objects.get(pk=endpoint.pk).is_active
    assert WebhookEndpoint.objects.get(pk=other_endpoint.pk).is_active
    shot("endpoint-disabled")


def test_beat_task_disabled_in_the_admin_is_in_the_audit_trail(live_server, browser, staff_login, shot):
    crontab = CrontabSchedule.objects.create(minute="23", hour="*", timezone="UTC")
    task = PeriodicTask.objects.create(name="e2e purge keys", task="core.tasks.purge_idempotency_keys", crontab=crontab)
    user = staff_login()

    browser.get(f"{live_server.url}/admin/django_celery_beat/periodictask/{task.pk}/change/")
    enabled = wait_for(browser, "#id_enabled")
    assert enabled.is_selected()
    enabled.click()
    shot("beat-task-unticked")
    submit_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "input[name='_save']"))
    assert "e2e purge keys" in message_text(browser)
    assert PeriodicTask.objects.get(pk=task.pk).enabled is False
    shot("beat-task-saved")

    event = AuditEvent.objects.get(action="beat.task_changed", subject_id=str(task.pk))
    assert event.actor_id == str(user.pk) and event.metadata["changes"] == {"enabled": {"from": True, "to": False}}
    browser.get(f"{live_server.url}/admin/audit/auditevent/")
    wait_for(browser, "#result_list")
    assert "beat.task_changed" in browser.find_element(By.ID, "result_list").text
    shot("audit-list-shows-beat-event")
    browser.get(f"{live_server.url}/admin/audit/auditevent/{event.pk}/change/")
    page = wait_for(browser, "#content").text
    assert "beat.task_changed" in page and "e2e purge keys" in page
    shot("audit-event-names-the-change")
