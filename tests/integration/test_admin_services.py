"""Staff writes on therapists, clients and couples: through the admin, each one goes through its service
(integration.services.therapists / client_data) and is audited with the staff user as actor, in the same
transaction as the change. Nothing that holds clinical records or consent history is deleted here."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from audit.models import AuditEvent
from integration.models import Client, Couple, Therapist
from integration.services import client_data, therapists
from tests.integration.factories import CoupleFactory, UserFactory, make_client, make_partner, make_therapist

pytestmark = pytest.mark.django_db

CLIENTS = "/api/integration/clients"


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser(username="admin", email="a@example.com", password="x" * 16)


@pytest.fixture
def staff(client, admin_user):
    client.force_login(admin_user)
    return client


def audit_down(**kwargs):
    raise RuntimeError("audit unavailable")


def therapist_form(therapist=None, **overrides):
    data = {
        "user": "",
        "first_name": therapist.first_name if therapist else "Tess",
        "last_name": therapist.last_name if therapist else "Therapist",
        "email": (therapist.email if therapist else "tess@example.com") or "",
        "phone": (therapist.phone if therapist else "+1 415 555 0100") or "",
        "is_active": "on",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def only_event(action: str) -> AuditEvent:
    return AuditEvent.objects.get(action=action)


# --- Therapists -------------------------------------------------------------------------------------


def test_adding_a_therapist_is_audited_as_the_staff_user(staff, admin_user):
    response = staff.post(reverse("admin:integration_therapist_add"), therapist_form())
    assert response.status_code == 302, response.content.decode()[:3000]
    therapist = Therapist.objects.get()
    assert therapist.phone == "+14155550100" and therapist.email == "tess@example.com"
    event = only_event("integration.therapist_created")
    assert (event.actor_type, event.actor_id) == ("user", str(admin_user.pk))
    assert (event.subject_type, event.subject_id) == ("therapist", str(therapist.pk))
    assert "+1415" not in str(event.metadata) and "tess@" not in str(event.metadata)


@pytest.mark.parametrize(
    "overrides,message",
    [({"phone": "415 555"}, "E.164"), ({"email": "not-an-email"}, "valid email"), ({"first_name": ""}, "required")],
)
def test_a_bad_therapist_form_shows_the_error_and_writes_nothing(staff, overrides, message):
    response = staff.post(reverse("admin:integration_therapist_add"), therapist_form(**overrides))
    assert response.status_code == 200 and message in response.content.decode()
    assert not Therapist.objects.exists() and not AuditEvent.objects.exists()


def test_editing_a_therapist_names_the_changed_fields_only(staff, admin_user):
    therapist = make_therapist()
    url = reverse("admin:integration_therapist_change", args=[therapist.pk])
    response = staff.post(url, therapist_form(therapist, last_name="Renamed"))
    assert response.status_code == 302, response.content.decode()[:3000]
    therapist.refresh_from_db()
    assert therapist.last_name == "Renamed" and therapist.is_active
    event = only_event("integration.therapist_updated")
    assert event.metadata == {"changed": ["last_name"]}
    assert (event.actor_type, event.actor_id) == ("user", str(admin_user.pk))
    assert not AuditEvent.objects.filter(action__startswith="integration.therapist_de").exists()

    staff.post(url, therapist_form(therapist))  # nothing changed: nothing recorded
    assert AuditEvent.objects.filter(action="integration.therapist_updated").count() == 1


def test_deactivating_in_the_form_cuts_the_partner_and_is_audited(staff, client, admin_user):
    therapist = make_therapist()
    test_partner = make_partner("SuperTool", therapists=[therapist])
    headers = test_partner.headers(therapist)
    assert client.get(CLIENTS, **headers).status_code == 200

    form = therapist_form(therapist, is_active=None)  # unchecked box
    response = staff.post(reverse("admin:integration_therapist_change", args=[therapist.pk]), form)
    assert response.status_code == 302, response.content.decode()[:3000]
    therapist.refresh_from_db()
    assert not therapist.is_active
    event = only_event("integration.therapist_deactivated")
    assert (event.actor_type, event.actor_id) == ("user", str(admin_user.pk))
    assert event.metadata == {"partner_ids": [str(test_partner.partner.pk)]}
    refused = client.get(CLIENTS, **headers)  # the very next request
    assert refused.status_code == 404 and refused.json()["error"] == "Therapist not found or inactive"


def test_deactivate_and_reactivate_actions(staff, admin_user):
    therapist = make_therapist()
    url = reverse("admin:integration_therapist_changelist")
    staff.post(url, {"action": "deactivate", ACTION_CHECKBOX_NAME: [str(therapist.pk)]})
    therapist.refresh_from_db()
    assert not therapist.is_active
    staff.post(url, {"action": "deactivate", ACTION_CHECKBOX_NAME: [str(therapist.pk)]})  # already: no event
    staff.post(url, {"action": "reactivate", ACTION_CHECKBOX_NAME: [str(therapist.pk)]})
    therapist.refresh_from_db()
    assert therapist.is_active
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", "actor_id"))
    assert actions == [
        ("integration.therapist_deactivated", str(admin_user.pk)),
        ("integration.therapist_reactivated", str(admin_user.pk)),
    ]


def test_a_therapist_change_is_never_saved_without_its_audit_event(staff, monkeypatch):
    therapist = make_therapist()
    monkeypatch.setattr(therapists, "audit_event_record", audit_down)
    with pytest.raises(RuntimeError, match="audit unavailable"):
        staff.post(
            reverse("admin:integration_therapist_change", args=[therapist.pk]),
            therapist_form(therapist, last_name="Renamed", is_active=None),
        )
    therapist.refresh_from_db()
    assert therapist.last_name == "Therapist" and therapist.is_active


# --- Clients ------------------------------------------------------------------------------------------


def test_adding_and_editing_a_client_is_audited_and_the_login_is_fixed(staff, admin_user):
    login, other = UserFactory(), UserFactory()
    response = staff.post(
        reverse("admin:integration_client_add"),
        {"user": str(login.pk), "first_name": "Jane", "last_name": "Doe", "email": "jane@example.com"},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    created = Client.objects.get()
    assert created.user == login
    event = only_event("integration.client_created")
    assert (event.actor_type, event.actor_id) == ("user", str(admin_user.pk))
    assert (event.subject_type, event.subject_id, event.metadata) == (
        "client",
        str(created.pk),
        {"user_id": str(login.pk)},
    )

    response = staff.post(
        reverse("admin:integration_client_change", args=[created.pk]),
        {"user": str(other.pk), "first_name": "Jane", "last_name": "Smith", "email": "jane@example.com"},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    created.refresh_from_db()
    assert created.last_name == "Smith" and created.user == login  # the login is read-only
    assert only_event("integration.client_updated").metadata == {"changed": ["last_name"]}


def test_a_client_is_never_created_without_its_audit_event(staff, monkeypatch):
    monkeypatch.setattr(client_data, "audit_event_record", audit_down)
    with pytest.raises(RuntimeError, match="audit unavailable"):
        staff.post(
            reverse("admin:integration_client_add"),
            {"user": str(UserFactory().pk), "first_name": "Jane", "last_name": "Doe", "email": ""},
        )
    assert not Client.objects.exists()


# --- Couples ------------------------------------------------------------------------------------------


def test_couples_are_created_and_restatused_through_the_service(staff, admin_user):
    jane, john = make_client("Jane", "Doe"), make_client("John", "Doe")
    add = reverse("admin:integration_couple_add")
    response = staff.post(add, {"partner1": str(jane.pk), "partner2": str(john.pk), "status": "active"})
    assert response.status_code == 302, response.content.decode()[:3000]
    couple = Couple.objects.get()
    event = only_event("integration.couple_created")
    assert (event.actor_type, event.actor_id, event.subject_id) == ("user", str(admin_user.pk), str(couple.pk))

    again = staff.post(add, {"partner1": str(john.pk), "partner2": str(jane.pk), "status": "active"})
    assert again.status_code == 200 and "already a couple" in again.content.decode()
    same = staff.post(add, {"partner1": str(jane.pk), "partner2": str(jane.pk), "status": "active"})
    assert same.status_code == 200 and Couple.objects.count() == 1

    other = make_client("Olga", "Other")
    change = reverse("admin:integration_couple_change", args=[couple.pk])
    response = staff.post(change, {"partner1": str(other.pk), "partner2": str(john.pk), "status": "inactive"})
    assert response.status_code == 302, response.content.decode()[:3000]
    couple.refresh_from_db()
    assert couple.status == "inactive" and couple.partner1 == jane  # the partners are read-only
    event = only_event("integration.couple_status_changed")
    assert event.metadata["old_status"] == "active" and event.metadata["new_status"] == "inactive"


# --- Nothing with records behind it is deleted ----------------------------------------------------------


def test_therapists_clients_and_couples_cannot_be_deleted(staff):
    therapist = make_therapist()
    jane, john = make_client("Jane", "Doe"), make_client("John", "Doe")
    couple = CoupleFactory(partner1=jane, partner2=john)
    for name, pk in (("therapist", therapist.pk), ("client", jane.pk), ("couple", couple.pk)):
        assert staff.get(reverse(f"admin:integration_{name}_delete", args=[pk])).status_code == 403, name
        listing = staff.get(reverse(f"admin:integration_{name}_changelist"))
        assert "delete_selected" not in listing.content.decode(), name
    assert Therapist.objects.count() == 1 and Client.objects.count() == 2 and Couple.objects.count() == 1
