"""Issue 10, finding 3: staff access to protected data in the admin is on the audit trail.

Opening a record's page (a lead and its decrypted message, a session-prep report, ...) writes one
`admin.record_viewed` event: who (the staff user), what (model and id), when. A list page writes one
`admin.records_listed` event with the ids it showed, never the search term. No audit row, no page.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib import admin as django_admin
from django.urls import reverse

from audit.models import AuditEvent
from core import auditing
from core.admin import AuditedViewAdminMixin
from core.encryption import EncryptedJSONField, EncryptedTextField
from integration.models import SessionPrepReport
from tests.integration.factories import ClientFactory, TherapistFactory
from tests.leads.factories import LeadFactory, make_platform

pytestmark = pytest.mark.django_db

MESSAGE = "My father was just diagnosed and I need a caregiver"


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_superuser(username="admin", email="a@example.com", password="x" * 16)


@pytest.fixture
def staff(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def lead():
    return LeadFactory(platform=make_platform().platform, original_message=MESSAGE)


@pytest.fixture
def report():
    when = datetime(2026, 11, 1, tzinfo=UTC)
    return SessionPrepReport.objects.create(
        therapist=TherapistFactory(),
        client=ClientFactory(),
        report_date=when,
        last_session_date=when,
        content={"generatedSummary": "Slept badly all week; argument on Sunday."},
    )


def viewed(action: str = "admin.record_viewed"):
    return list(AuditEvent.objects.filter(action=action).order_by("pk"))


def test_opening_a_lead_records_who_opened_which_lead(staff, staff_user, lead):
    response = staff.get(reverse("admin:leads_lead_change", args=[lead.pk]))
    assert response.status_code == 200
    assert MESSAGE in response.content.decode()  # the decrypted message was shown...
    [event] = viewed()  # ...so exactly one event says who saw it
    assert (event.actor_type, event.actor_id) == ("user", str(staff_user.pk))
    assert (event.subject_type, event.subject_id) == ("leads.lead", str(lead.pk))
    assert event.metadata == {"view": "change", "method": "GET", "public_id": lead.public_id}
    assert event.created_at is not None


def test_opening_a_session_prep_report_is_recorded(staff, staff_user, report):
    response = staff.get(reverse("admin:integration_sessionprepreport_change", args=[report.pk]))
    assert response.status_code == 200
    [event] = viewed()
    assert (event.subject_type, event.subject_id) == ("integration.sessionprepreport", str(report.pk))
    assert event.actor_id == str(staff_user.pk)


def test_a_list_page_records_the_ids_it_showed_and_never_the_search_term(staff, lead):
    response = staff.get(reverse("admin:leads_lead_changelist"), {"q": "+14155550199"})
    assert response.status_code == 200
    response = staff.get(reverse("admin:leads_lead_changelist"))
    assert response.status_code == 200
    searched, listed = viewed("admin.records_listed")
    assert searched.metadata == {"view": "list", "method": "GET", "ids": [], "searched": True}
    assert listed.metadata["ids"] == [str(lead.pk)] and listed.metadata["searched"] is False
    assert listed.subject_type == "leads.lead"
    assert "14155550199" not in str(searched.metadata)
    assert viewed() == []  # a list is not a record's page


def test_the_history_page_is_recorded_and_the_add_page_is_not(staff, report):
    staff.get(reverse("admin:integration_sessionprepreport_history", args=[report.pk]))
    [event] = viewed()
    assert event.metadata["view"] == "history"
    assert staff.get(reverse("admin:integration_client_add")).status_code == 200
    assert len(viewed()) == 1


def test_no_page_leaves_without_its_audit_row(staff, lead, monkeypatch):
    def recorder_down(**kwargs):
        raise RuntimeError("audit unavailable")

    monkeypatch.setattr(auditing, "_recorder", lambda path: recorder_down)
    with pytest.raises(RuntimeError, match="audit unavailable"):
        staff.get(reverse("admin:leads_lead_change", args=[lead.pk]))


# Admins of models with encrypted columns that show none of them, and why.
NOT_PROTECTED_PAGES = {
    "leads.CareosKeyPair": "shows the public key and fingerprint only; the private key is never displayed",
}


def test_every_admin_of_a_model_holding_encrypted_data_is_audited():
    """A new admin for a model with an encrypted column must audit its pages (or be listed above)."""
    missing = []
    for model, model_admin in django_admin.site._registry.items():
        encrypted = any(isinstance(f, EncryptedTextField | EncryptedJSONField) for f in model._meta.fields)
        if encrypted and model._meta.label not in NOT_PROTECTED_PAGES:
            if not isinstance(model_admin, AuditedViewAdminMixin):
                missing.append(model._meta.label)
    assert missing == []


# Protected data without an encrypted column of its own: consent links (who is in therapy with whom),
# alerts (clinical events), couples (who is a couple), the audit trail itself.
ALSO_AUDITED = {
    "integration.TherapistClientLink",
    "integration.Alert",
    "integration.Couple",
    "integration.SessionPrepReport",
    "audit.AccessLog",
    "audit.AuditEvent",
}


def test_protected_records_without_encrypted_columns_are_audited_too():
    registry = {model._meta.label: model_admin for model, model_admin in django_admin.site._registry.items()}
    assert {label for label in ALSO_AUDITED if not isinstance(registry[label], AuditedViewAdminMixin)} == set()


def test_an_autocomplete_search_records_the_ids_it_returned(staff, staff_user):
    therapist = TherapistFactory(last_name="Autocomplete")
    response = staff.get(
        reverse("admin:autocomplete"),
        {"app_label": "integration", "model_name": "integrationpartner", "field_name": "therapists", "term": "Auto"},
    )
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [str(therapist.pk)]
    [event] = viewed("admin.records_listed")
    assert event.subject_type == "integration.therapist" and event.actor_id == str(staff_user.pk)
    assert event.metadata == {"view": "autocomplete", "method": "GET", "ids": [str(therapist.pk)], "searched": True}
    assert "Auto" not in str(event.metadata)
