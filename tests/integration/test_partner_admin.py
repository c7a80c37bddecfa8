"""Staff side: the partner admin (all writes through audited services) and the partner services."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import pytest
from django.contrib import admin as django_admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from audit.models import AuditEvent
from core.actors import Actor
from core.time import utc_now
from integration.models import Alert, IntegrationPartner, JournalEntry, PartnerCredential, TherapistClientLink
from integration.services import client_data, partners
from integration.services.auth import find_credential, secret_matches
from tests.integration.factories import link, make_client, make_partner, make_therapist

pytestmark = pytest.mark.django_db

CLIENTS = "/api/integration/clients"


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser(username="admin", email="a@example.com", password="x" * 16)
    client.force_login(user)
    return client


@pytest.fixture
def therapist():
    return make_therapist()


@pytest.fixture(autouse=True)
def private_media(settings, tmp_path):
    settings.PRIVATE_MEDIA_ROOT = tmp_path / "private-media"
    return settings.PRIVATE_MEDIA_ROOT


def act(client, action: str, ids, *, confirm: bool = False):
    """Run a list action; `confirm` answers its confirmation page's "yes" (post=yes)."""
    url = reverse("admin:integration_integrationpartner_changelist")
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(i) for i in ids]}
    return client.post(url, {**data, "post": "yes"} if confirm else data)


def form_data(therapists, **overrides):
    data = {
        "name": "SuperTool",
        "baa_signed_at": "2026-01-15",
        "baa_signer": "Pat Partner",
        "allowed_ips": "203.0.113.0/24\n2001:db8::/32",
        "rate_limit_per_minute": "300",
        "therapists": [str(t.pk) for t in therapists],
        "credentials-TOTAL_FORMS": "0",
        "credentials-INITIAL_FORMS": "0",
        "credentials-MIN_NUM_FORMS": "0",
        "credentials-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


# --- Create and edit through the form ---------------------------------------------------------------


def test_add_partner_through_the_admin_is_audited(staff, therapist):
    response = staff.post(reverse("admin:integration_integrationpartner_add"), form_data([therapist]))
    assert response.status_code == 302, response.content.decode()[:3000]
    partner = IntegrationPartner.objects.get(name="SuperTool")
    assert partner.allowed_ips == ["203.0.113.0/24", "2001:db8::/32"]
    assert partner.rate_limit_per_minute == 300 and partner.baa_signed_at == date(2026, 1, 15)
    assert list(partner.therapists.all()) == [therapist]
    event = AuditEvent.objects.get(action="integration.partner_created")
    assert event.actor_type == "user" and event.subject_id == str(partner.pk)


def test_add_partner_with_its_baa_document_is_one_audited_service_call(staff, therapist, private_media):
    content = b"%PDF-1.4 signed"
    document = SimpleUploadedFile("Pat Partner signed.pdf", content, content_type="application/pdf")
    data = form_data([therapist], baa_document=document)
    response = staff.post(reverse("admin:integration_integrationpartner_add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    partner = IntegrationPartner.objects.get(name="SuperTool")
    # Stored in private storage under a random name, never the uploaded one.
    assert partner.baa_document.name.startswith("baa/") and "Partner" not in partner.baa_document.name
    assert (private_media / partner.baa_document.name).read_bytes() == content
    assert partner.baa_document_sha256 == hashlib.sha256(content).hexdigest()
    event = AuditEvent.objects.get(action="integration.partner_created")
    assert event.metadata["baa_document"] is True and event.actor_id == str(staff.session["_auth_user_id"])
    assert event.metadata["baa_document_sha256"] == partner.baa_document_sha256
    assert not AuditEvent.objects.filter(action="integration.partner_updated").exists()


def test_a_partner_is_never_created_without_its_audit_event(staff, therapist, monkeypatch):
    def audit_down(**kwargs):
        raise RuntimeError("audit unavailable")

    monkeypatch.setattr(partners, "audit_event_record", audit_down)
    with pytest.raises(RuntimeError, match="audit unavailable"):
        staff.post(reverse("admin:integration_integrationpartner_add"), form_data([therapist]))
    assert not IntegrationPartner.objects.exists()


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"allowed_ips": "10.0.0.1/8"}, "is not a valid IPv4 or IPv6 network"),
        ({"allowed_ips": "not-an-ip"}, "is not a valid IPv4 or IPv6 network"),
        ({"rate_limit_per_minute": "0"}, "between 1 and 100000"),
        ({"baa_signer": ""}, "Who signed the BAA?"),
    ],
)
def test_bad_partner_form_shows_the_error_and_creates_nothing(staff, therapist, overrides, message):
    response = staff.post(reverse("admin:integration_integrationpartner_add"), form_data([therapist], **overrides))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not IntegrationPartner.objects.exists()


def test_edit_allowlist_baa_and_therapists(staff, therapist):
    other = make_therapist("Olga", "Other")
    partner = make_partner("SuperTool", therapists=[therapist]).partner
    page = staff.get(reverse("admin:integration_integrationpartner_change", args=[partner.pk]))
    assert page.status_code == 200
    data = form_data(
        [therapist, other],
        allowed_ips="198.51.100.7",
        baa_document=SimpleUploadedFile("baa.pdf", b"%PDF-1.4 signed", content_type="application/pdf"),
    )
    response = staff.post(reverse("admin:integration_integrationpartner_change", args=[partner.pk]), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    partner.refresh_from_db()
    assert partner.allowed_ips == ["198.51.100.7/32"]
    assert set(partner.therapists.all()) == {therapist, other}
    assert partner.baa_document.name.startswith("baa/")
    event = AuditEvent.objects.get(action="integration.partner_updated")
    assert {"allowed_ips", "therapists", "baa_document", "rate_limit_per_minute"} <= set(event.metadata["changed"])
    assert event.metadata["allowed_ips"] == ["198.51.100.7/32"]

    bad = staff.post(
        reverse("admin:integration_integrationpartner_change", args=[partner.pk]),
        form_data([therapist], allowed_ips="198.51.100.0/33"),
    )
    assert bad.status_code == 200 and "not a valid IPv4 or IPv6 network" in bad.content.decode()
    partner.refresh_from_db()
    assert partner.allowed_ips == ["198.51.100.7/32"]


# --- Actions -------------------------------------------------------------------------------------


def test_create_credential_shows_key_and_secret_once(staff, therapist):
    partner = make_partner("SuperTool", therapists=[therapist]).partner
    before = set(PartnerCredential.objects.values_list("pk", flat=True))
    response = act(staff, "create_credential", [partner.pk])
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    credential = PartnerCredential.objects.exclude(pk__in=before).get()
    page = response.content.decode()
    start = page.index("lr_int_")
    api_key = page[start : page.index("<", start)]
    start = page.index("sk_live_")
    api_secret = page[start : page.index("<", start)]
    assert find_credential(api_key) == credential
    assert secret_matches(credential, api_secret, utc_now())
    assert api_secret not in credential.secret_hash and api_key not in credential.key_digest
    assert AuditEvent.objects.filter(action="integration.credential_created", actor_type="user").exists()

    # Shown once: not kept in the session or a cookie for the next page.
    listing = staff.get(reverse("admin:integration_integrationpartner_changelist"))
    assert api_secret not in listing.content.decode()
    change = staff.get(reverse("admin:integration_integrationpartner_change", args=[partner.pk]))
    assert api_secret not in change.content.decode() and credential.key_hint in change.content.decode()
    assert all(api_secret not in value.value for value in staff.cookies.values())


def test_rotate_keeps_the_old_secret_valid_for_the_overlap(staff, therapist, settings):
    test_partner = make_partner("SuperTool", therapists=[therapist])
    first = act(staff, "rotate_secret", [test_partner.partner.pk])
    assert first.status_code == 200 and "Yes, rotate the secrets" in first.content.decode()
    assert not AuditEvent.objects.filter(action="integration.credential_secret_rotated").exists()
    response = act(staff, "rotate_secret", [test_partner.partner.pk], confirm=True)
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    page = response.content.decode()
    start = page.index("sk_live_")
    new_secret = page[start : page.index("<", start)]
    credential = PartnerCredential.objects.get(pk=test_partner.credential.pk)
    now = utc_now()
    assert secret_matches(credential, new_secret, now)
    assert secret_matches(credential, test_partner.api_secret, now)
    overlap = timedelta(hours=settings.LOVERESCUE_SECRET_OVERLAP_HOURS)
    assert not secret_matches(credential, test_partner.api_secret, now + overlap + timedelta(seconds=1))
    assert AuditEvent.objects.filter(action="integration.credential_secret_rotated").count() == 1


def test_revoke_all_keys_stops_live_tokens(staff, client, therapist):
    test_partner = make_partner("SuperTool", therapists=[therapist])
    headers = test_partner.headers(therapist)
    assert client.get(CLIENTS, **headers).status_code == 200
    act(staff, "revoke_all_keys", [test_partner.partner.pk], confirm=True)
    assert PartnerCredential.objects.get(pk=test_partner.credential.pk).revoked_at is not None
    assert client.get(CLIENTS, **headers).status_code == 401
    assert AuditEvent.objects.filter(action="integration.credential_revoked").count() == 1


def test_suspend_and_reactivate(staff, client, therapist):
    test_partner = make_partner("SuperTool", therapists=[therapist])
    headers = test_partner.headers(therapist)
    act(staff, "suspend", [test_partner.partner.pk], confirm=True)
    partner = IntegrationPartner.objects.get(pk=test_partner.partner.pk)
    assert partner.status == "suspended" and partner.suspended_at is not None
    assert client.get(CLIENTS, **headers).status_code == 401
    act(staff, "reactivate", [partner.pk])
    partner.refresh_from_db()
    assert partner.status == "active" and partner.suspended_at is None
    assert client.get(CLIENTS, **headers).status_code == 200
    actions = list(AuditEvent.objects.filter(subject_id=str(partner.pk)).values_list("action", flat=True))
    assert "integration.partner_suspended" in actions and "integration.partner_reactivated" in actions


# --- Services directly ----------------------------------------------------------------------------


def test_partner_services_are_idempotent_and_validate(therapist):
    partner = make_partner("SuperTool", therapists=[therapist]).partner
    actor = {"actor": Actor.system("tests")}
    assert partners.partner_suspend(partner=partner, **actor) is True
    assert partners.partner_suspend(partner=partner, **actor) is False
    assert partners.partner_reactivate(partner=partner, **actor) is True
    assert partners.partner_reactivate(partner=partner, **actor) is False
    credential = partner.credentials.get()
    assert partners.partner_credential_revoke(credential=credential, **actor) is True
    assert partners.partner_credential_revoke(credential=credential, **actor) is False
    with pytest.raises(partners.PartnerInvalid, match="not a valid"):
        partners.partner_update(partner=partner, allowed_ips=["300.0.0.0/8"], **actor)
    with pytest.raises(partners.PartnerInvalid, match="between 1 and"):
        partners.partner_update(partner=partner, rate_limit_per_minute=100_001, **actor)
    with pytest.raises(partners.PartnerInvalid, match="whole number"):
        partners.partner_update(partner=partner, rate_limit_per_minute="ten", **actor)
    make_partner("Other")
    with pytest.raises(partners.PartnerInvalid, match="already exists"):
        partners.partner_update(partner=partner, name="Other", **actor)
    before = AuditEvent.objects.filter(action="integration.partner_updated").count()
    partners.partner_update(partner=partner, baa_signer="Pat Partner", therapists=[therapist], **actor)  # no change
    assert AuditEvent.objects.filter(action="integration.partner_updated").count() == before
    updated = partners.partner_update(partner=partner, baa_signed_at=None, rate_limit_per_minute=None, **actor)
    assert not updated.has_baa
    event = AuditEvent.objects.filter(action="integration.partner_updated").latest("pk")
    assert event.metadata["changed"] == ["baa_signed_at"] and event.metadata["baa_signed_at"] is None


def test_removing_the_baa_refuses_the_next_request(client, therapist):
    test_partner = make_partner("SuperTool", therapists=[therapist])
    headers = test_partner.headers(therapist)
    assert client.get(CLIENTS, **headers).status_code == 200
    partners.partner_update(partner=test_partner.partner, baa_signed_at=None, actor=Actor.system("t"))
    response = client.get(CLIENTS, **headers)
    assert response.status_code == 403 and response.json()["code"] == "NOT_CONFIGURED"


# --- Other admin pages ------------------------------------------------------------------------------


def test_other_admin_pages_render_and_journal_is_not_registered(staff, therapist):
    jane = make_client("Jane", "Doe")
    granted = link(therapist, jane, "FULL")
    JournalEntry.objects.create(client=jane, text="HIDDEN-JOURNAL-TEXT", therapist_hidden=True, created_at=utc_now())
    Alert.objects.create(
        client=jane,
        alert_type="RISK",
        severity="HIGH",
        rule="risk_mood",
        episode_key="2026-01-01",
        required_level="STANDARD",
        message="Mood has dropped",
        created_at=utc_now(),
    )
    assert JournalEntry not in django_admin.site._registry
    for name in ("therapist", "client", "therapistclientlink", "couple", "alert", "sessionprepreport"):
        listing = staff.get(reverse(f"admin:integration_{name}_changelist"), {"q": "Doe"})
        assert listing.status_code == 200, name
        assert "HIDDEN-JOURNAL-TEXT" not in listing.content.decode()
    for name, pk in (("client", jane.pk), ("therapistclientlink", granted.pk), ("therapist", therapist.pk)):
        page = staff.get(reverse(f"admin:integration_{name}_change", args=[pk]))
        assert page.status_code == 200 and "HIDDEN-JOURNAL-TEXT" not in page.content.decode()
    alert_page = staff.get(reverse("admin:integration_alert_change", args=[Alert.objects.get().pk]))
    assert alert_page.status_code == 200
    assert staff.get(reverse("admin:integration_alert_add")).status_code == 403


def test_staff_added_link_starts_pending_and_is_read_only(staff, therapist):
    jane = make_client("Jane", "Doe")
    response = staff.post(
        reverse("admin:integration_therapistclientlink_add"),
        {"therapist": str(therapist.pk), "client": str(jane.pk), "permission_level": "STANDARD"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    created = TherapistClientLink.objects.get()
    assert created.consent_granted_at is None and not created.has_consent
    assert AuditEvent.objects.filter(action="integration.link_created", subject_id=str(jane.pk)).exists()
    # The level and consent are the client's: posting a change does nothing.
    staff.post(
        reverse("admin:integration_therapistclientlink_change", args=[created.pk]),
        {"therapist": str(therapist.pk), "client": str(jane.pk), "permission_level": "FULL"},
    )
    created.refresh_from_db()
    assert created.permission_level == "STANDARD"


def test_staff_added_link_is_audited_as_the_staff_user(staff, therapist, django_user_model):
    jane = make_client("Jane", "Doe")
    staff.post(
        reverse("admin:integration_therapistclientlink_add"),
        {"therapist": str(therapist.pk), "client": str(jane.pk), "permission_level": "BASIC"},
    )
    created = TherapistClientLink.objects.get()
    event = AuditEvent.objects.get(action="integration.link_created")
    admin_user = django_user_model.objects.get(username="admin")
    assert (event.actor_type, event.actor_id) == ("user", str(admin_user.pk))
    assert (event.subject_type, event.subject_id) == ("client", str(jane.pk))
    assert event.metadata == {
        "link_id": str(created.pk),
        "therapist_id": str(therapist.pk),
        "permission_level": "BASIC",
    }


def test_a_link_is_never_written_without_its_audit_event(therapist, monkeypatch):
    jane = make_client("Jane", "Doe")

    def audit_down(**kwargs):
        raise RuntimeError("audit unavailable")

    monkeypatch.setattr(client_data, "audit_event_record", audit_down)
    with pytest.raises(RuntimeError):
        client_data.link_create(
            therapist=therapist, client=jane, permission_level="STANDARD", actor=Actor.system("tests")
        )
    assert not TherapistClientLink.objects.exists()


def test_client_lists_name_people_and_keep_ids_on_the_record_page(staff, therapist):
    """Alerts, couples and links fit 1,400 px: clients by name, no id column (the id is on the row's page)."""
    jane, john = make_client("Jane", "Doe"), make_client("John", "Roe")
    granted = link(therapist, jane, "FULL")
    couple = client_data.couple_create(partner1=jane, partner2=john, status="active", actor=Actor.system("t"))
    alert = Alert.objects.create(
        client=jane,
        alert_type="RISK",
        severity="HIGH",
        rule="risk_mood",
        episode_key="2026-01-01",
        required_level="STANDARD",
        message="Mood has dropped",
        created_at=utc_now(),
    )
    for name, row, names in (
        ("alert", alert, ("Jane Doe",)),
        ("couple", couple, ("Jane Doe", "John Roe")),
        ("therapistclientlink", granted, ("Jane Doe",)),
    ):
        listing = staff.get(reverse(f"admin:integration_{name}_changelist")).content.decode()
        assert all(person in listing for person in names), name
        assert str(jane.pk) not in listing and "column-id" not in listing, name
        assert reverse(f"admin:integration_{name}_change", args=[row.pk]) in listing, name
        page = staff.get(reverse(f"admin:integration_{name}_change", args=[row.pk])).content.decode()
        assert str(row.pk) in page, name
