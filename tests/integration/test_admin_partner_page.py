"""The partner admin's own page (issue 14): the signed BAA in private storage and its audited staff
download, upload checks, every bad IP allowlist entry at once, the key actions as buttons with their
confirmation pages, and the links to the partner's keys, webhooks and audit trail."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from core.actors import Actor
from core.time import utc_now
from integration.models import IntegrationPartner, PartnerCredential
from integration.services import partners
from tests.integration.factories import make_partner, make_therapist
from webhooks.models import Scheme, WebhookEndpoint

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n"
CLIENTS = "/api/integration/clients"


@pytest.fixture(autouse=True)
def private_media(settings, tmp_path):
    settings.PRIVATE_MEDIA_ROOT = tmp_path / "private-media"
    return settings.PRIVATE_MEDIA_ROOT


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser(username="admin", email="a@example.com", password="x" * 16)


@pytest.fixture
def staff(client, admin_user):
    client.force_login(admin_user)
    return client


def staff_with(django_user_model, *codenames: str) -> Client:
    user = django_user_model.objects.create_user(username="-".join(codenames) or "bare", password="x" * 16)
    user.is_staff = True
    user.save()
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="integration", codename__in=codenames))
    browser = Client()
    browser.force_login(user)
    return browser


def partner_with_baa(content: bytes = PDF) -> IntegrationPartner:
    partner = make_partner("SuperTool", therapists=[make_therapist()]).partner
    upload = SimpleUploadedFile("baa.pdf", content, content_type="application/pdf")
    return partners.partner_update(partner=partner, baa_document=upload, actor=Actor.system("tests"))


def download_url(partner) -> str:
    return reverse("admin:integration_integrationpartner_baa_document", args=[partner.pk])


def change_url(partner) -> str:
    return reverse("admin:integration_integrationpartner_change", args=[partner.pk])


def form_data(partner, **overrides):
    data = {
        "name": partner.name,
        "baa_signed_at": "2026-01-15",
        "baa_signer": "Pat Partner",
        "allowed_ips": "",
        "rate_limit_per_minute": "",
        "therapists": [str(t.pk) for t in partner.therapists.all()],
        "credentials-TOTAL_FORMS": "0",
        "credentials-INITIAL_FORMS": "0",
        "credentials-MIN_NUM_FORMS": "0",
        "credentials-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


# --- BAA document: where it is kept and who may read it ----------------------------------------------


def test_private_media_root_is_outside_the_code_and_static_files():
    root = Path(django_settings.PRIVATE_MEDIA_ROOT).resolve()
    base = Path(django_settings.BASE_DIR).resolve()
    code_dirs = [p for p in base.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    assert code_dirs and not any(root == d or d in root.parents for d in code_dirs)
    assert Path(django_settings.STATIC_ROOT).resolve() not in [root, *root.parents]
    if base in root.parents:  # the dev default: under the git-ignored .local/
        assert (base / ".local") in root.parents


def test_the_document_is_written_to_private_storage_and_has_no_public_url(private_media):
    partner = partner_with_baa()
    assert (private_media / partner.baa_document.name).read_bytes() == PDF
    assert not (Path(django_settings.BASE_DIR) / partner.baa_document.name).exists()
    with pytest.raises(ValueError, match="no public URL"):
        partner.baa_document.url  # noqa: B018


def test_staff_download_is_audited_and_sent_as_an_attachment(staff, admin_user):
    partner = partner_with_baa()
    response = staff.get(download_url(partner))
    assert response.status_code == 200
    assert response.content == PDF
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;")
    assert "SuperTool" in response["Content-Disposition"] and "baa/" not in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"]
    event = AuditEvent.objects.get(action="integration.baa_document_downloaded")
    assert (event.actor_type, event.actor_id) == ("user", str(admin_user.pk))
    assert (event.subject_type, event.subject_id) == ("integration_partner", str(partner.pk))
    assert event.metadata["baa_document_sha256"] == hashlib.sha256(PDF).hexdigest()


def test_no_audit_row_no_document(staff, monkeypatch):
    partner = partner_with_baa()

    def audit_down(**kwargs):
        raise RuntimeError("audit unavailable")

    monkeypatch.setattr(partners, "audit_event_record", audit_down)
    with pytest.raises(RuntimeError, match="audit unavailable"):
        staff.get(download_url(partner))


def test_anonymous_and_non_staff_are_sent_to_the_login(client, django_user_model):
    partner = partner_with_baa()
    anonymous = client.get(download_url(partner))
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    user = django_user_model.objects.create_user(username="patient", password="x" * 16)
    client.force_login(user)
    not_staff = client.get(download_url(partner))
    assert not_staff.status_code == 302 and "/login/" in not_staff["Location"]
    assert not AuditEvent.objects.filter(action="integration.baa_document_downloaded").exists()


def test_staff_without_view_permission_get_403_and_with_it_the_file(django_user_model):
    partner = partner_with_baa()
    assert staff_with(django_user_model).get(download_url(partner)).status_code == 403
    assert not AuditEvent.objects.filter(action="integration.baa_document_downloaded").exists()
    viewer = staff_with(django_user_model, "view_integrationpartner")
    page = viewer.get(change_url(partner))  # read-only page: the document is a link to the view
    assert page.status_code == 200 and f'href="{download_url(partner)}"' in page.content.decode()
    assert viewer.get(download_url(partner)).content == PDF


def test_a_stored_name_outside_private_storage_is_never_read(staff):
    partner = partner_with_baa()
    for name in ("../../config/settings.py", "/etc/passwd"):
        IntegrationPartner.objects.filter(pk=partner.pk).update(baa_document=name)
        response = staff.get(download_url(partner))
        assert response.status_code == 404
    assert not AuditEvent.objects.filter(action="integration.baa_document_downloaded").exists()


def test_missing_document_is_404(staff):
    partner = make_partner("NoBaa").partner
    assert staff.get(download_url(partner)).status_code == 404
    assert staff.get(reverse("admin:integration_integrationpartner_baa_document", args=["not-a-uuid"])).status_code in (
        302,
        404,
    )


def test_currently_links_the_download_view_not_a_media_url(staff):
    partner = partner_with_baa()
    page = staff.get(change_url(partner)).content.decode()
    assert f'href="{download_url(partner)}"' in page
    assert partner.baa_document.name not in page


@pytest.mark.parametrize(
    "name,content,content_type,message",
    [
        ("baa.docx", PDF, "application/pdf", "must be a PDF file"),
        ("baa.pdf", b"<html>not a pdf</html>", "application/pdf", "does not start with %PDF-"),
        ("baa.pdf", PDF, "text/html", "this file was sent as text/html"),
    ],
)
def test_uploads_that_are_not_pdfs_are_refused_with_a_form_error(staff, name, content, content_type, message):
    partner = make_partner("SuperTool", therapists=[make_therapist()]).partner
    upload = SimpleUploadedFile(name, content, content_type=content_type)
    response = staff.post(change_url(partner), form_data(partner, baa_document=upload))
    assert response.status_code == 200
    assert message in response.content.decode()
    partner.refresh_from_db()
    assert not partner.baa_document


def test_uploads_over_the_size_cap_are_refused(staff, settings):
    settings.BAA_DOCUMENT_MAX_BYTES = 2048
    partner = make_partner("SuperTool", therapists=[make_therapist()]).partner
    upload = SimpleUploadedFile("baa.pdf", PDF + b"0" * 4096, content_type="application/pdf")
    response = staff.post(change_url(partner), form_data(partner, baa_document=upload))
    assert response.status_code == 200
    assert "the largest accepted is" in response.content.decode()
    partner.refresh_from_db()
    assert not partner.baa_document
    with pytest.raises(partners.PartnerInvalid, match="largest accepted"):
        partners.partner_update(
            partner=partner,
            baa_document=SimpleUploadedFile("baa.pdf", PDF + b"0" * 4096, content_type="application/pdf"),
            actor=Actor.system("tests"),
        )


# --- IP allowlist ----------------------------------------------------------------------------------


def test_every_bad_allowlist_entry_is_reported_at_once(staff):
    partner = make_partner("SuperTool", therapists=[make_therapist()]).partner
    entries = "2001:db8::/32\n10.0.0.1/8\nnot-an-ip\n203.0.113.7\n2001:db8::zz"
    response = staff.post(change_url(partner), form_data(partner, allowed_ips=entries))
    assert response.status_code == 200
    page = response.content.decode()
    errors = re.search(r'<ul class="errorlist"[^>]*>(.*?)</ul>', page, re.S).group(1)
    assert "10.0.0.1/8" in errors and "did you mean 10.0.0.0/8?" in errors
    assert "not-an-ip" in errors and "2001:db8::zz" in errors
    assert "2001:db8::/32" not in errors and "203.0.113.7" not in errors
    partner.refresh_from_db()
    assert partner.allowed_ips == []  # nothing saved
    assert "2001:db8::/32\n10.0.0.1/8" in page  # the text as typed, to correct


def test_ipv6_and_cidr_entries_are_accepted(staff):
    partner = make_partner("SuperTool", therapists=[make_therapist()]).partner
    entries = "2001:db8::/32, 2001:db8:1::1\n203.0.113.0/24\n198.51.100.7"
    response = staff.post(change_url(partner), form_data(partner, allowed_ips=entries))
    assert response.status_code == 302, response.content.decode()[:2000]
    partner.refresh_from_db()
    assert partner.allowed_ips == ["2001:db8::/32", "2001:db8:1::1/128", "203.0.113.0/24", "198.51.100.7/32"]


def test_the_service_names_every_bad_entry():
    with pytest.raises(partners.PartnerInvalid) as caught:
        partners.normalize_allowed_ips(["10.0.0.1/8", "192.0.2.0/24", "nope"])
    assert caught.value.message.startswith("2 entries are not valid")
    assert len(caught.value.details) == 2 and "nope" in caught.value.details[1]


# --- The partner's page: links and buttons -----------------------------------------------------------


def test_the_page_links_keys_webhooks_deliveries_and_audit_trail(staff):
    partner = make_partner("SuperTool", therapists=[make_therapist()]).partner
    endpoint = WebhookEndpoint.objects.create(
        owner_type="integration_partner",
        owner_id=str(partner.pk),
        url="https://hooks.example.com/lr",
        secret="s" * 32,
        events=["*"],
        scheme=Scheme.LOVERESCUE,
    )
    page = staff.get(change_url(partner)).content.decode()
    hrefs = re.findall(r'<div class="module partner-tools".*?</div>', page, re.S)[0]
    links = dict(re.findall(r'<a href="([^"]+)">([^<]+)</a>', hrefs))
    by_label = {label: url.replace("&amp;", "&") for url, label in links.items()}
    assert by_label["API keys (1 live)"] == "#credentials-group" and 'id="credentials-group"' in page
    endpoints = urlsplit(by_label["Webhook endpoints (1)"])
    assert parse_qs(endpoints.query) == {"owner_type": ["integration_partner"], "owner_id": [str(partner.pk)]}
    deliveries = urlsplit(by_label["Webhook deliveries"])
    assert parse_qs(deliveries.query) == {"endpoint__id__in": [str(endpoint.pk)]}
    audit = urlsplit(by_label["Audit trail (changes)"])
    assert parse_qs(audit.query) == {"subject_type": ["integration_partner"], "subject_id": [str(partner.pk)]}
    # Each link opens a filtered list (not the admin's "?e=1" for an unknown lookup).
    labels = ("Webhook endpoints (1)", "Webhook deliveries", "Audit trail (changes)", "Audit trail (its API requests)")
    for label in labels:
        listing = staff.get(by_label[label])
        assert listing.status_code == 200, label
        assert "e=1" not in listing.get("Location", "")
    endpoint_rows = staff.get(by_label["Webhook endpoints (1)"]).context["cl"].result_list
    assert [e.pk for e in endpoint_rows] == [endpoint.pk]
    audit_rows = staff.get(by_label["Audit trail (changes)"]).context["cl"].result_list
    assert audit_rows and all(row.subject_id == str(partner.pk) for row in audit_rows)


def test_the_page_offers_the_key_actions_as_buttons(staff):
    partner = make_partner("SuperTool", therapists=[make_therapist()]).partner
    page = staff.get(change_url(partner)).content.decode()
    base = change_url(partner).removesuffix("change/")
    for name in ("create-credential", "rotate-secret", "revoke-all-keys", "suspend"):
        assert f'action="{base}{name}/"' in page, name
    assert f'action="{base}reactivate/"' not in page  # active: nothing to reactivate


def test_buttons_are_post_only_and_need_the_change_permission(staff, django_user_model):
    partner = make_partner("SuperTool", therapists=[make_therapist()]).partner
    url = reverse("admin:integration_integrationpartner_suspend", args=[partner.pk])
    assert staff.get(url).status_code == 405
    viewer = staff_with(django_user_model, "view_integrationpartner")
    assert viewer.post(url, {"post": "yes"}).status_code == 403
    assert 'action="' + url not in viewer.get(change_url(partner)).content.decode()
    partner.refresh_from_db()
    assert partner.is_active


def test_buttons_need_the_csrf_token(admin_user):
    partner = make_partner("SuperTool", therapists=[make_therapist()]).partner
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    url = reverse("admin:integration_integrationpartner_revoke_all_keys", args=[partner.pk])
    assert browser.post(url, {"post": "yes"}).status_code == 403
    assert PartnerCredential.objects.filter(partner=partner, revoked_at__isnull=True).exists()


def test_suspend_button_confirms_first_and_says_what_stops(staff, client):
    therapist = make_therapist("Tess", "Therapist")
    test_partner = make_partner("SuperTool", therapists=[therapist])
    partner = test_partner.partner
    url = reverse("admin:integration_integrationpartner_suspend", args=[partner.pk])
    page = staff.post(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Yes, suspend" in text and test_partner.credential.key_hint in text
    assert "Tess Therapist" in text and "webhook endpoint" in text
    partner.refresh_from_db()
    assert partner.is_active and not AuditEvent.objects.filter(action="integration.partner_suspended").exists()
    done = staff.post(url, {"post": "yes"})
    assert done.status_code == 302 and done["Location"] == change_url(partner)
    partner.refresh_from_db()
    assert not partner.is_active
    assert client.get(CLIENTS, **test_partner.headers(therapist)).status_code == 401
    page = staff.get(change_url(partner)).content.decode()
    assert "reactivate/" in page and "suspend/" not in page


def test_revoke_button_confirms_then_revokes(staff):
    test_partner = make_partner("SuperTool", therapists=[make_therapist()])
    url = reverse("admin:integration_integrationpartner_revoke_all_keys", args=[test_partner.partner.pk])
    text = staff.post(url).content.decode()
    assert "Yes, revoke all keys" in text and test_partner.credential.key_hint in text
    assert PartnerCredential.objects.get(pk=test_partner.credential.pk).revoked_at is None
    staff.post(url, {"post": "yes"})
    assert PartnerCredential.objects.get(pk=test_partner.credential.pk).revoked_at is not None
    event = AuditEvent.objects.get(action="integration.credential_revoked")
    assert event.actor_type == "user"


def test_rotate_button_confirms_then_shows_the_new_secret_once_with_a_readable_time(staff):
    test_partner = make_partner("SuperTool", therapists=[make_therapist()])
    url = reverse("admin:integration_integrationpartner_rotate_secret", args=[test_partner.partner.pk])
    confirm = staff.post(url).content.decode()
    assert "Yes, rotate the secrets" in confirm and "keeps working until about" in confirm
    done = staff.post(url, {"post": "yes"})
    assert done.status_code == 200 and "no-store" in done["Cache-Control"]
    text = done.content.decode()
    assert "sk_live_" in text
    assert re.search(r"the old secret works until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)", text), text
    assert "+00:00" not in text


def test_create_button_shows_the_new_key_once(staff):
    partner = make_partner("SuperTool", therapists=[make_therapist()]).partner
    before = partner.credentials.count()
    response = staff.post(reverse("admin:integration_integrationpartner_create_credential", args=[partner.pk]))
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert "lr_int_" in response.content.decode() and "sk_live_" in response.content.decode()
    assert partner.credentials.count() == before + 1


def test_reactivate_button(staff):
    partner = make_partner("SuperTool", therapists=[make_therapist()]).partner
    partners.partner_suspend(partner=partner, actor=Actor.system("tests"))
    response = staff.post(reverse("admin:integration_integrationpartner_reactivate", args=[partner.pk]))
    assert response.status_code == 302
    partner.refresh_from_db()
    assert partner.is_active


def test_read_only_times_on_the_page_are_readable(staff):
    partner = make_partner("SuperTool", therapists=[make_therapist()]).partner
    partners.partner_credential_rotate_secret(credential=partner.credentials.get(), actor=Actor.system("tests"))
    page = staff.get(change_url(partner)).content.decode()
    stamp = utc_now().strftime("%Y-%m-%d")
    assert f"{stamp} " in page and " UTC" in page
    assert not re.search(r"\d\d:\d\d:\d\d\.\d{6}", page)


def test_migration_moves_old_documents_out_of_the_source_tree(settings, tmp_path, private_media):
    import importlib

    from django.apps import apps
    from django.core.files.storage import default_storage

    settings.MEDIA_ROOT = str(tmp_path / "old-media-root")  # where uploads used to land (the working directory)
    old_name = default_storage.save("integration/baa/Pat Partner signed.pdf", SimpleUploadedFile("x", PDF))
    partner = make_partner("SuperTool").partner
    IntegrationPartner.objects.filter(pk=partner.pk).update(baa_document=old_name)
    migration = importlib.import_module("integration.migrations.0004_partner_baa_private_storage")
    migration.move_documents_to_private_storage(apps, None)
    partner.refresh_from_db()
    assert partner.baa_document.name.startswith("baa/") and "Pat" not in partner.baa_document.name
    assert (private_media / partner.baa_document.name).read_bytes() == PDF
    assert partner.baa_document_sha256 == hashlib.sha256(PDF).hexdigest()
    assert not default_storage.exists(old_name)
    migration.move_documents_to_private_storage(apps, None)  # twice: nothing more to move
    partner.refresh_from_db()
    assert (private_media / partner.baa_document.name).exists()
