"""Mark admin (issue 11, "Admin"): conversations with their messages (read-only, decrypted for staff,
audited), clinic settings (validated, saved through the service and audited by field name, secrets
write-only: never rendered back), and Mark API users created with a password shown once that signs in
at POST /api/v1/auth/token."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.urls import reverse

from accounts.models import Membership, User
from audit.models import AuditEvent
from patients import services
from patients.models import ClinicSettings, Conversation
from patients.services.clinic_settings import clinic_settings_update
from tests.patients.conftest import ACTOR

pytestmark = pytest.mark.django_db

SECRET = "zoom-very-secret-value-1234"
API_KEY = "sk-ant-responder-key-5678"
HX = "HX" + "0123456789abcdef" * 2
MG = "MG" + "fedcba9876543210" * 2


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser(username="admin", email="a@example.com", password="x-long-pw-42")
    client.force_login(user)
    return client


@pytest.fixture
def conversation(clinic):
    patient = services.patient_create(organization=clinic, name="José García", phone_number="+34612345678", actor=ACTOR)
    services.message_record(patient=patient, sender="patient", content="Hola, ¿tienen hora el martes?")
    services.message_record(patient=patient, sender="assistant", content="Sí, a las 17:00.")
    return Conversation.objects.get(patient=patient)


def _settings_form(organization=None, **values) -> dict:
    data = {
        "country": "",
        "time_zone": "",
        "whatsapp_number": "",
        "whatsapp_messaging_service_sid": "",
        "whatsapp_templates": "{}",
        "responder": "none",
        "responder_model": "",
        "zoom_account_id": "",
        "zoom_client_id": "",
        "new_responder_api_key": "",
        "new_zoom_client_secret": "",
    }
    if organization is not None:
        data["organization"] = organization.pk
    data.update(values)
    return data


# --- Conversations -------------------------------------------------------------------------------------


def test_conversation_list_renders_and_is_audited(staff, conversation):
    response = staff.get(reverse("admin:patients_conversation_changelist"))
    assert response.status_code == 200
    assert conversation.public_id in response.content.decode()
    event = AuditEvent.objects.get(action="admin.records_listed", subject_type="patients.conversation")
    assert event.metadata["ids"] == [str(conversation.pk)]


def test_conversation_page_shows_decrypted_messages_read_only_and_is_audited(staff, conversation):
    url = reverse("admin:patients_conversation_change", args=[conversation.pk])
    response = staff.get(url)
    body = response.content.decode()
    assert response.status_code == 200
    assert "Hola, ¿tienen hora el martes?" in body and "Sí, a las 17:00." in body
    assert "received" in body  # the patient's message status
    event = AuditEvent.objects.get(action="admin.record_viewed", subject_type="patients.conversation")
    assert event.metadata["public_id"] == conversation.public_id
    assert "Hola" not in json.dumps(event.metadata)
    # At rest the text is encrypted.
    with connection.cursor() as cursor:
        cursor.execute("SELECT content FROM patients_message WHERE conversation_id = %s", [conversation.pk])
        assert all("Hola" not in row[0] for row in cursor.fetchall())
    # Read-only: a POST changes nothing.
    staff.post(url, {"language": "ar"})
    conversation.refresh_from_db()
    assert conversation.language == "en"


# --- Clinic settings -----------------------------------------------------------------------------------


def test_settings_add_page_renders_and_saving_goes_through_the_service(staff, clinic):
    assert staff.get(reverse("admin:patients_clinicsettings_add")).status_code == 200
    templates = {"reminder_24h": {"es": HX, "en": HX}}
    response = staff.post(
        reverse("admin:patients_clinicsettings_add"),
        _settings_form(
            clinic,
            country="es",
            time_zone="Europe/Madrid",
            whatsapp_number="930 00 00 01",  # read in the clinic's country
            whatsapp_messaging_service_sid=MG,
            whatsapp_templates=json.dumps(templates),
            responder="anthropic",
            zoom_account_id="acc-1",
            zoom_client_id="client-1",
            new_zoom_client_secret=SECRET,
            new_responder_api_key=API_KEY,
        ),
        follow=True,
    )

    assert response.status_code == 200, response.content[:500]
    body = response.content.decode()
    assert "Zoom client secret set: stored encrypted; it will not be shown again." in body
    assert SECRET not in body and API_KEY not in body
    config = ClinicSettings.objects.get(organization=clinic)
    assert (config.country, config.time_zone, config.whatsapp_number) == ("ES", "Europe/Madrid", "+34930000001")
    assert config.whatsapp_templates == templates and config.responder == "anthropic"
    assert config.zoom_client_secret == SECRET and config.responder_api_key == API_KEY and config.zoom_connected
    event = AuditEvent.objects.get(action="clinic_settings.updated")
    assert event.actor_type == "user" and event.metadata["created"] is True
    assert set(event.metadata["fields"]) >= {"whatsapp_number", "zoom_client_secret", "responder_api_key"}
    text = json.dumps(event.metadata)
    assert SECRET not in text and API_KEY not in text and "930" not in text
    with connection.cursor() as cursor:
        cursor.execute("SELECT zoom_client_secret FROM patients_clinicsettings WHERE organization_id = %s", [clinic.pk])
        assert SECRET not in cursor.fetchone()[0]


def test_a_secret_is_never_rendered_back_and_blank_keeps_it(staff, clinic):
    clinic_settings_update(
        organization=clinic, actor=ACTOR, zoom_account_id="acc", zoom_client_id="cid", zoom_client_secret=SECRET,
        responder_api_key=API_KEY,
    )  # fmt: skip
    url = reverse("admin:patients_clinicsettings_change", args=[clinic.pk])
    page = staff.get(url).content.decode()
    assert SECRET not in page and API_KEY not in page
    assert "Zoom client secret: SET" in page
    assert AuditEvent.objects.filter(action="admin.record_viewed", subject_type="patients.clinicsettings").exists()

    # Saving with the secret fields blank keeps both; another field changes.
    response = staff.post(url, _settings_form(time_zone="Atlantic/Canary", zoom_account_id="acc", zoom_client_id="cid"))
    assert response.status_code == 302, response.content[:500]
    config = ClinicSettings.objects.get(pk=clinic.pk)
    assert config.zoom_client_secret == SECRET and config.responder_api_key == API_KEY
    assert config.time_zone == "Atlantic/Canary"
    event = AuditEvent.objects.filter(action="clinic_settings.updated").latest("id")
    assert event.metadata["fields"] == ["time_zone"]

    # "Remove" (a button under Status) clears one, after a confirmation page saying what stops.
    remove = reverse("admin:patients_clinicsettings_secret_remove", args=[clinic.pk, "zoom_client_secret"])
    assert remove in staff.get(url).content.decode()
    page = staff.get(remove).content.decode()
    assert "Mark can no longer create or delete Zoom meetings" in page and SECRET not in page
    config.refresh_from_db()
    assert config.zoom_client_secret == SECRET
    assert staff.post(remove, {"post": "yes"})["Location"] == url
    config.refresh_from_db()
    assert config.zoom_client_secret is None and not config.zoom_connected and config.responder_api_key == API_KEY
    event = AuditEvent.objects.filter(action="clinic_settings.updated").latest("id")
    assert event.metadata["fields"] == ["zoom_client_secret"] and SECRET not in str(event.metadata)
    # The form itself has no "remove" box any more: a ticked one from an old page changes nothing.
    staff.post(url, _settings_form(zoom_account_id="acc", zoom_client_id="cid", clear_responder_api_key="on"))
    config.refresh_from_db()
    assert config.responder_api_key == API_KEY


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"time_zone": "../../etc/passwd"}, "time_zone"),
        ({"country": "XX"}, "country"),
        ({"whatsapp_number": "+34 12"}, "whatsapp_number"),
        ({"whatsapp_messaging_service_sid": "MG123"}, "whatsapp_messaging_service_sid"),
        ({"whatsapp_templates": '{"reminder_24h": "HX1"}'}, "whatsapp_templates"),
        ({"whatsapp_templates": '{"reminder_24h": {"es": "SM0123"}}'}, "whatsapp_templates"),
        ({"whatsapp_templates": json.dumps({"Bad Name": {"es": HX}})}, "whatsapp_templates"),
        ({"whatsapp_templates": "[1, 2]"}, "whatsapp_templates"),
        ({"zoom_account_id": "has spaces"}, "zoom_account_id"),
    ],
)
def test_bad_settings_are_refused_next_to_the_field(staff, clinic, values, field):
    response = staff.post(reverse("admin:patients_clinicsettings_add"), _settings_form(clinic, **values))
    assert response.status_code == 200  # the form again
    assert field in response.context["adminform"].form.errors, response.context["adminform"].form.errors
    assert not ClinicSettings.objects.exists()
    assert not AuditEvent.objects.filter(action="clinic_settings.updated").exists()
    assert SECRET not in response.content.decode()


def test_a_whatsapp_number_belongs_to_one_clinic(staff, clinic, other_clinic):
    clinic_settings_update(organization=other_clinic, actor=ACTOR, whatsapp_number="+34930000001")
    response = staff.post(
        reverse("admin:patients_clinicsettings_add"), _settings_form(clinic, whatsapp_number="+34 930 000 001")
    )
    assert response.context["adminform"].form.errors["whatsapp_number"] == ["Another clinic uses this WhatsApp number"]
    assert not ClinicSettings.objects.filter(organization=clinic).exists()


def test_settings_list_shows_zoom_status_and_api_user_counts(staff, clinic, other_clinic):
    clinic_settings_update(
        organization=clinic, actor=ACTOR, zoom_account_id="a", zoom_client_id="c", zoom_client_secret=SECRET
    )
    clinic_settings_update(organization=other_clinic, actor=ACTOR, country="ES")
    response = staff.get(reverse("admin:patients_clinicsettings_changelist"))
    body = response.content.decode()
    assert response.status_code == 200 and SECRET not in body
    assert clinic.name in body and other_clinic.name in body
    assert body.count("Add Mark API user") == 2
    assert AuditEvent.objects.filter(action="admin.records_listed", subject_type="patients.clinicsettings").exists()


# --- Mark API users ------------------------------------------------------------------------------------


def test_an_api_user_is_created_with_a_password_shown_once_that_gets_a_token(staff, clinic, api_client):
    add = reverse("admin:patients_clinicsettings_api_user_add")
    assert staff.get(add, {"organization": clinic.pk}).status_code == 200

    response = staff.post(add, {"organization": clinic.pk, "username": "clinic-system", "role": "staff"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    body = response.content.decode()
    match = re.search(r"password <code>([^<]+)</code>", body)
    assert match, body[:2000]
    password = match.group(1)
    assert len(password) >= 20
    user = User.objects.get(username="clinic-system")
    assert user.check_password(password) and password not in user.password  # stored hashed only
    assert Membership.objects.get(user=user).role == "staff"
    assert Membership.objects.get(user=user).organization_id == clinic.pk
    assert AuditEvent.objects.filter(action="mark.api_user_created", subject_id=str(user.pk)).exists()
    assert all(password not in json.dumps(event.metadata) for event in AuditEvent.objects.all())

    # Shown once: the message was consumed by that page; the next pages do not have it.
    assert password not in staff.get(reverse("admin:patients_clinicsettings_changelist")).content.decode()

    token = api_client.post("/api/v1/auth/token", {"username": "clinic-system", "password": password}, format="json")
    assert token.status_code == 200, token.content
    access = token.json()["access_token"]
    listed = api_client.get("/api/v1/patients", HTTP_AUTHORIZATION=f"Bearer {access}")
    assert listed.status_code == 200, listed.content

    # The clinic's page lists its API users.
    clinic_settings_update(organization=clinic, actor=ACTOR, country="ES")
    page = staff.get(reverse("admin:patients_clinicsettings_change", args=[clinic.pk])).content.decode()
    assert "clinic-system (staff)" in page


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"username": "has space", "role": "staff"}, "username"),
        ({"username": "admin", "role": "staff"}, "username"),  # taken (the staff user)
        ({"username": "ok-user", "role": "therapist"}, "role"),
    ],
)
def test_bad_api_user_input_is_refused_and_creates_nothing(staff, clinic, data, field):
    before = User.objects.count()
    response = staff.post(reverse("admin:patients_clinicsettings_api_user_add"), {"organization": clinic.pk, **data})
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert User.objects.count() == before and "password <code>" not in response.content.decode()


def test_staff_without_user_permissions_may_not_create_api_users(client, clinic, django_user_model):
    user = django_user_model.objects.create_user(username="clerk", password="x-long-pw-42", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_clinicsettings"))
    client.force_login(user)
    response = client.post(
        reverse("admin:patients_clinicsettings_api_user_add"),
        {"organization": clinic.pk, "username": "sneaky", "role": "owner"},
    )
    assert response.status_code == 403
    assert not User.objects.filter(username="sneaky").exists()


# --- The services directly -----------------------------------------------------------------------------


def test_clinic_settings_update_is_partial_and_writes_nothing_when_nothing_changes(clinic):
    from core.domain import Invalid

    config = clinic_settings_update(organization=clinic, actor=ACTOR, country="ES", zoom_client_secret=SECRET)
    assert AuditEvent.objects.filter(action="clinic_settings.updated").count() == 1
    same = clinic_settings_update(organization=clinic, actor=ACTOR, country="es")  # normalised: no change
    assert same.zoom_client_secret == SECRET and same.country == "ES"
    assert AuditEvent.objects.filter(action="clinic_settings.updated").count() == 1
    with pytest.raises(Invalid) as caught:
        clinic_settings_update(organization=clinic, actor=ACTOR, zoom_client_secret="   ")
    assert caught.value.details == {"field": "zoom_client_secret"}
    with pytest.raises(Invalid):
        clinic_settings_update(organization=clinic, actor=ACTOR, organization_id=5)
    config.refresh_from_db()
    assert config.zoom_client_secret == SECRET


def test_api_users_only_for_an_active_organization_and_a_mark_role(clinic):
    from accounts import services as accounts_services
    from core.domain import Invalid
    from patients.services.clinic_settings import mark_api_user_create

    with pytest.raises(Invalid) as caught:
        mark_api_user_create(organization=clinic, username="x-user", role="supervisor", actor=ACTOR)
    assert caught.value.details == {"field": "role"}
    accounts_services.organization_update(
        organization=clinic, name=clinic.name, clerk_organization_id=None, is_active=False, actor=ACTOR
    )
    clinic.refresh_from_db()
    with pytest.raises(Invalid) as caught:
        mark_api_user_create(organization=clinic, username="x-user", role="staff", actor=ACTOR)
    assert caught.value.details == {"field": "organization"}
    assert not User.objects.filter(username="x-user").exists()


def test_a_settings_page_is_titled_with_the_clinic_name(staff, clinic):
    clinic_settings_update(organization=clinic, actor=ACTOR, time_zone="Europe/Madrid")
    page = staff.get(reverse("admin:patients_clinicsettings_change", args=[clinic.pk])).content.decode()
    assert f"settings of {clinic.name}" in page
