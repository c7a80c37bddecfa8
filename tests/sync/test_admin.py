"""Sync admin: Cliniko connections (key entered once, write-only, never shown; test-connection button and
action; sync_enabled through a service), sync runs (read-only, progress and error codes, "run a sync now"
through sync_run_start), every page audited."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from core.actors import Actor
from sync import services
from sync.models import ClinikoConnection, SyncRun
from tests.cliniko_stub import ClinikoStub
from tests.sync.read_factories import make_organization

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")
KEY = "MS0xLWFkbWluLWtleS1zZWNyZXQ-au3"


@pytest.fixture(autouse=True)
def cliniko_settings(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    settings.CLINIKO_USER_AGENT = "Routiq tests (tests@example.com)"


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser(username="admin", email="a@example.com", password="x-long-pw-42")
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def clinic(db):
    return make_organization("Admin sync clinic")


def test_adding_a_connection_stores_the_key_encrypted_and_never_shows_it(staff, clinic):
    response = staff.post(
        reverse("admin:sync_clinikoconnection_add"),
        {"organization": clinic.pk, "new_api_key": KEY, "base_url": "", "sync_enabled": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    connection = ClinikoConnection.objects.get(organization=clinic)
    assert connection.api_key == KEY and connection.shard == "au3" and connection.sync_enabled
    event = AuditEvent.objects.get(action="sync.cliniko_connected")
    assert KEY not in str(event.metadata)
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute("SELECT api_key FROM sync_clinikoconnection")
        assert KEY not in cursor.fetchone()[0]  # encrypted at rest

    page = staff.get(reverse("admin:sync_clinikoconnection_change", args=[connection.pk]))
    listing = staff.get(reverse("admin:sync_clinikoconnection_changelist"))
    for response in (page, listing):
        assert response.status_code == 200
        assert KEY not in response.content.decode() and "admin-key-secret" not in response.content.decode()
    assert "set (stored encrypted, never shown)" in page.content.decode()
    assert AuditEvent.objects.filter(action="admin.record_viewed", subject_type="sync.clinikoconnection").exists()
    assert AuditEvent.objects.filter(action="admin.records_listed", subject_type="sync.clinikoconnection").exists()


def test_adding_without_a_key_or_with_a_bad_key_is_refused(staff, clinic):
    url = reverse("admin:sync_clinikoconnection_add")
    assert staff.post(url, {"organization": clinic.pk, "new_api_key": "", "sync_enabled": "on"}).status_code == 200
    assert staff.post(url, {"organization": clinic.pk, "new_api_key": "has spaces in it"}).status_code == 200
    assert not ClinikoConnection.objects.exists()


def test_the_change_form_cannot_turn_the_sync_off_and_a_new_key_keeps_it(staff, clinic):
    services.cliniko_connect(organization=clinic, api_key=KEY, actor=ACTOR)
    url = reverse("admin:sync_clinikoconnection_change", args=[clinic.pk])
    assert 'name="sync_enabled"' not in staff.get(url).content.decode()
    response = staff.post(url, {"new_api_key": "", "base_url": ""})  # no sync_enabled in the post
    assert response.status_code == 302, response.content.decode()[:2000]
    connection = ClinikoConnection.objects.get(organization=clinic)
    assert connection.sync_enabled is True and connection.api_key == KEY
    assert not AuditEvent.objects.filter(action="sync.cliniko_sync_enabled_changed").exists()
    assert AuditEvent.objects.filter(action="sync.cliniko_connected").count() == 1  # not reconnected

    new_key = "MS0xLW5ldy1rZXk-uk1"
    staff.post(url, {"new_api_key": new_key, "base_url": ""})
    connection.refresh_from_db()
    assert connection.api_key == new_key and connection.shard == "uk1" and connection.sync_enabled


def test_turning_the_sync_off_asks_first_and_says_what_stops(staff, clinic):
    services.cliniko_connect(organization=clinic, api_key=KEY, actor=ACTOR)
    changelist = reverse("admin:sync_clinikoconnection_changelist")
    ask = {"action": "turn_sync_off", "_selected_action": [clinic.pk]}
    page = staff.post(changelist, ask).content.decode()
    assert "Turn the hourly Cliniko sync off for these clinics?" in page and clinic.name in page
    assert "stop reaching Mark and the Routiq dashboards" in page
    assert ClinikoConnection.objects.get(organization=clinic).sync_enabled is True

    assert staff.post(changelist, {**ask, "post": "yes"}).status_code == 302
    assert ClinikoConnection.objects.get(organization=clinic).sync_enabled is False
    event = AuditEvent.objects.get(action="sync.cliniko_sync_enabled_changed")
    assert event.metadata == {"sync_enabled": False} and event.actor_id == str(staff.user.pk)


def test_the_connection_page_switches_the_sync_through_confirmation_pages(staff, clinic):
    services.cliniko_connect(organization=clinic, api_key=KEY, actor=ACTOR)
    change = reverse("admin:sync_clinikoconnection_change", args=[clinic.pk])
    off = reverse("admin:sync_clinikoconnection_sync_off", args=[clinic.pk])
    assert off in staff.get(change).content.decode()
    assert "Yes, turn it off" in staff.get(off).content.decode()
    assert ClinikoConnection.objects.get(organization=clinic).sync_enabled is True
    assert staff.post(off, {"post": "yes"})["Location"] == change
    assert ClinikoConnection.objects.get(organization=clinic).sync_enabled is False

    on = reverse("admin:sync_clinikoconnection_sync_on", args=[clinic.pk])
    assert on in staff.get(change).content.decode()
    assert staff.post(on, {"post": "yes"})["Location"] == change
    assert ClinikoConnection.objects.get(organization=clinic).sync_enabled is True


def test_lists_name_the_clinic_with_a_link(staff, clinic):
    services.cliniko_connect(organization=clinic, api_key=KEY, actor=ACTOR)
    SyncRun.objects.create(organization=clinic, status="completed")
    link = f'<a href="{reverse("admin:accounts_organization_change", args=[clinic.pk])}">{clinic.name}</a>'
    assert link in staff.get(reverse("admin:sync_syncrun_changelist")).content.decode()
    # A connection's row links to the connection by the clinic's name (a row's own link, not nested).
    own = f'<a href="{reverse("admin:sync_clinikoconnection_change", args=[clinic.pk])}">{clinic.name}</a>'
    connections = staff.get(reverse("admin:sync_clinikoconnection_changelist")).content.decode()
    assert own in connections and clinic.public_id not in connections


def test_test_connection_button_and_action_call_cliniko(staff, clinic):
    with ClinikoStub() as stub:
        stub.add_account(KEY)
        services.cliniko_connect(organization=clinic, api_key=KEY, base_url=stub.base_url, actor=ACTOR)
        url = reverse("admin:sync_clinikoconnection_test", args=[clinic.pk])
        assert staff.get(url).status_code == 200
        assert not stub.requests  # the GET only asks for confirmation
        response = staff.post(url)
        assert response.status_code == 302
        assert ClinikoConnection.objects.get(organization=clinic).credentials_valid is True
        assert stub.requests[-1].api_key == KEY

        services.cliniko_connect(
            organization=clinic, api_key="MS0xLXVua25vd24-au3", base_url=stub.base_url, actor=ACTOR
        )
        staff.post(
            reverse("admin:sync_clinikoconnection_changelist"),
            {"action": "test_connections", "_selected_action": [clinic.pk]},
        )
        assert ClinikoConnection.objects.get(organization=clinic).credentials_valid is False
    assert AuditEvent.objects.filter(action="sync.cliniko_connection_tested").count() == 2


def test_run_a_sync_now_starts_one_run_through_the_service(staff, clinic):
    services.cliniko_connect(organization=clinic, api_key=KEY, actor=ACTOR)
    changelist = reverse("admin:sync_clinikoconnection_changelist")
    staff.post(changelist, {"action": "run_sync_now", "_selected_action": [clinic.pk]})
    run = SyncRun.objects.get(organization=clinic)
    assert run.trigger == "admin" and run.mode == "comprehensive" and run.requested_by == staff.user
    # Again, from the runs list: the running run is reported, not doubled.
    response = staff.post(
        reverse("admin:sync_syncrun_changelist"), {"action": "run_sync_now", "_selected_action": [run.pk]}, follow=True
    )
    assert "already running" in response.content.decode()
    assert SyncRun.objects.filter(organization=clinic).count() == 1
    assert AuditEvent.objects.filter(action="sync.run_started").count() == 1


def test_sync_runs_are_read_only_with_progress_and_error_codes(staff, clinic):
    run = SyncRun.objects.create(
        organization=clinic,
        status="failed",
        errors=[{"step": "patients", "code": "cliniko_http_500", "at": None}],
        total_steps=2,
        completed_steps=1,
    )
    listing = staff.get(reverse("admin:sync_syncrun_changelist"))
    body = listing.content.decode()
    assert listing.status_code == 200 and run.public_id in body and "cliniko_http_500" in body and "100.0%" in body
    page = reverse("admin:sync_syncrun_change", args=[run.pk])
    assert staff.get(page).status_code == 200
    staff.post(page, {"status": "completed"})
    run.refresh_from_db()
    assert run.status == "failed"
    assert staff.post(reverse("admin:sync_syncrun_delete", args=[run.pk]), {"post": "yes"}).status_code == 403
    assert SyncRun.objects.filter(pk=run.pk).exists()
    assert AuditEvent.objects.filter(action="admin.record_viewed", subject_type="sync.syncrun").exists()
    assert AuditEvent.objects.filter(action="admin.records_listed", subject_type="sync.syncrun").exists()


def test_a_connection_page_is_titled_with_the_clinic_name(staff, clinic):
    services.cliniko_connect(organization=clinic, api_key=KEY, actor=ACTOR)
    page = staff.get(reverse("admin:sync_clinikoconnection_change", args=[clinic.pk])).content.decode()
    assert f"Cliniko connection of {clinic.name}" in page
