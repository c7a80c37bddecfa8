"""CareOS admin: platforms (key creation shown once, suspend), API keys (revoke), RSA pairs (rotate,
retire, private key never shown), leads and users (read-only, masked phones, phone search)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from audit.models import AuditEvent
from core.actors import Actor
from core.encryption import blind_index
from core.phones import mask as mask_phone
from core.time import utc_now
from leads import crypto
from leads.admin import phone_search_index
from leads.models import CareosKeyPair, CareUser, Lead, PartnerPlatform, PartnerUser, PlatformApiKey
from leads.services import platforms
from tests.leads.factories import make_platform, rsa_pair, store_pair

pytestmark = pytest.mark.django_db

PHONE = "+14155550123"
MESSAGE = "I need help finding a caregiver for my mom who has mobility issues"


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser(username="admin", email="a@example.com", password="x" * 16)
    client.force_login(user)
    return client


def act(client, model: str, action: str, ids):
    return client.post(
        reverse(f"admin:leads_{model}_changelist"), {"action": action, ACTION_CHECKBOX_NAME: [str(i) for i in ids]}
    )


def confirm(client, model: str, action: str, ids, **extra):
    """The "yes" of an action's confirmation page (core.admin.confirm_action)."""
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(i) for i in ids], "post": "yes", **extra}
    return client.post(reverse(f"admin:leads_{model}_changelist"), data)


def make_lead(platform: PartnerPlatform, *, phone: str = PHONE, conversation: str = "c-1", **fields) -> Lead:
    user = CareUser.objects.filter(phone_index=blind_index(phone, purpose="leads.user.phone")).first()
    if user is None:
        user = CareUser.objects.create(
            phone=phone,
            phone_index=blind_index(phone, purpose="leads.user.phone"),
            name="John Doe",
            source=platform.user_source,
            source_platform=platform,
        )
    partner_user, _ = PartnerUser.objects.get_or_create(platform=platform, user=user)
    values = {
        "platform": platform,
        "source_conversation_id": conversation,
        "user": user,
        "partner_user": partner_user,
        "is_new_user": True,
        "user_name": "John Doe",
        "language": "en",
        "source_category": "caregiver",
        "category": "caregiver_hiring",
        "original_message": MESSAGE,
        "ai_extracted_details": {"person_mentioned": "mom"},
        "consent_timestamp": datetime(2025, 1, 8, 12, tzinfo=UTC),
        "lead_value": Decimal("15.00"),
    }
    values.update(fields)
    return Lead.objects.create(**values)


def platform_form(**overrides) -> dict:
    data = {
        "slug": "businessos",
        "name": "BusinessOS",
        "contact_name": "Pat",
        "contact_email": "pay@businessos.example",
        "minimum_payout": "50.00",
        "payout_backend": "manual",
        "stripe_account_id": "",
        "api_keys-TOTAL_FORMS": "0",
        "api_keys-INITIAL_FORMS": "0",
        "api_keys-MIN_NUM_FORMS": "0",
        "api_keys-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


# --- helpers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone,masked",
    [
        ("+14155550123", "+1 ••• ••• 0123"),
        ("+33612345678", "+33 ••• ••• 5678"),
        ("+447911123456", "+44 ••• ••• 3456"),
        ("", ""),
        (None, ""),
        ("garbage", "•••"),
    ],
)
def test_mask_phone(phone, masked):
    assert mask_phone(phone) == masked


def test_phone_search_index_normalizes_like_the_ingest():
    wanted = blind_index(PHONE, purpose="leads.user.phone")
    assert phone_search_index("+1 (415) 555-0123") == wanted
    assert phone_search_index("(415) 555-0123") == wanted  # a US national number
    assert phone_search_index("user_abc") is None and phone_search_index("12") is None


# --- Platforms --------------------------------------------------------------------------------------


def test_add_platform_through_the_admin_is_audited(staff):
    response = staff.post(reverse("admin:leads_partnerplatform_add"), platform_form())
    assert response.status_code == 302, response.content.decode()[:3000]
    platform = PartnerPlatform.objects.get(slug="businessos")
    assert platform.contact_email == "pay@businessos.example" and len(platform.phone_hash_salt) == 64
    event = AuditEvent.objects.get(action="leads.platform_created")
    assert event.actor_type == "user" and event.subject_id == "businessos"


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"slug": "Business-OS"}, "lowercase letters and digits"),
        ({"payout_backend": "stripe"}, "connected account"),
        ({"payout_backend": "stripe", "stripe_account_id": "nope"}, "acct_"),
        ({"minimum_payout": "-5"}, "0 or more"),
    ],
)
def test_bad_platform_form_creates_nothing(staff, overrides, message):
    response = staff.post(reverse("admin:leads_partnerplatform_add"), platform_form(**overrides))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not PartnerPlatform.objects.exists()


def test_edit_platform_goes_through_the_service_and_the_slug_stays(staff):
    platform = make_platform().platform
    url = reverse("admin:leads_partnerplatform_change", args=[platform.pk])
    data = platform_form(slug="renamed", payout_backend="stripe", stripe_account_id="acct_123", minimum_payout="20")
    response = staff.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    platform.refresh_from_db()
    assert (platform.slug, platform.payout_backend, platform.stripe_account_id) == ("businessos", "stripe", "acct_123")
    assert platform.minimum_payout == Decimal("20.00")
    event = AuditEvent.objects.get(action="leads.platform_updated")
    assert event.actor_type == "user" and "stripe_account_id" in event.metadata["changed"]


def test_a_platform_change_is_never_saved_without_its_audit_event(staff, monkeypatch):
    platform = make_platform().platform

    def audit_down(**kwargs):
        raise RuntimeError("audit unavailable")

    monkeypatch.setattr(platforms, "audit_event_record", audit_down)
    url = reverse("admin:leads_partnerplatform_change", args=[platform.pk])
    with pytest.raises(RuntimeError, match="audit unavailable"):
        staff.post(url, platform_form(minimum_payout="20"))
    with pytest.raises(RuntimeError, match="audit unavailable"):
        staff.post(reverse("admin:leads_partnerplatform_add"), platform_form(slug="another"))
    platform.refresh_from_db()
    assert platform.minimum_payout != Decimal("20.00")
    assert not PartnerPlatform.objects.filter(slug="another").exists()


def test_salt_shown_on_the_platform_page_only_and_live_keys_counted(staff):
    setup = make_platform()
    platform = setup.platform
    platforms.api_key_create(platform=platform, environment="test", actor=Actor.system("t"))
    expired = platforms.api_key_create(
        platform=platform, environment="live", expires_at=utc_now() + timedelta(seconds=1), actor=Actor.system("t")
    )
    PlatformApiKey.objects.filter(pk=expired.api_key.pk).update(expires_at=utc_now() - timedelta(seconds=1))
    revoked = platforms.api_key_create(platform=platform, environment="live", actor=Actor.system("t"))
    platforms.api_key_revoke(api_key=revoked.api_key, actor=Actor.system("t"))

    listing = staff.get(reverse("admin:leads_partnerplatform_changelist"))
    assert listing.status_code == 200
    assert platform.phone_hash_salt not in listing.content.decode()
    [row] = listing.context["cl"].result_list
    assert row.live_keys_count == 1  # the factory's key; not the test, expired or revoked ones

    page = staff.get(reverse("admin:leads_partnerplatform_change", args=[platform.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert platform.phone_hash_salt in body and setup.api_key not in body
    assert revoked.api_key.key_hint in body


@pytest.mark.parametrize("environment", ["live", "test"])
def test_create_key_action_shows_the_key_once(staff, environment):
    platform = make_platform().platform
    before = set(PlatformApiKey.objects.values_list("pk", flat=True))

    response = act(staff, "partnerplatform", f"create_{environment}_key", [platform.pk])

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    page = response.content.decode()
    prefix = f"businessos_{environment}_"
    start = page.index(prefix)
    full_key = page[start : page.index("<", start)]
    key = PlatformApiKey.objects.exclude(pk__in=before).get()
    assert platforms.find_api_key(platform_slug="businessos", presented=full_key) == key
    assert key.environment == environment
    assert timedelta(days=89) < key.expires_at - utc_now() <= timedelta(days=90)
    event = AuditEvent.objects.get(action="leads.api_key_created", actor_type="user")
    assert event.metadata["key_id"] == key.key_id

    # Shown once: not in the next pages, nor in the session or a cookie.
    assert full_key not in staff.get(reverse("admin:leads_partnerplatform_changelist")).content.decode()
    change = staff.get(reverse("admin:leads_partnerplatform_change", args=[platform.pk])).content.decode()
    assert full_key not in change and key.key_hint in change
    assert all(full_key not in value.value for value in staff.cookies.values())


def test_suspend_and_reactivate_actions(staff):
    setup = make_platform()
    page = act(staff, "partnerplatform", "suspend", [setup.platform.pk])
    assert page.status_code == 200 and "refused (401)" in page.content.decode()
    assert PartnerPlatform.objects.get(pk=setup.platform.pk).status == "active"
    confirm(staff, "partnerplatform", "suspend", [setup.platform.pk])
    assert PartnerPlatform.objects.get(pk=setup.platform.pk).status == "suspended"
    assert platforms.find_api_key(platform_slug="businessos", presented=setup.api_key) is None
    act(staff, "partnerplatform", "reactivate", [setup.platform.pk])
    assert PartnerPlatform.objects.get(pk=setup.platform.pk).status == "active"
    assert platforms.find_api_key(platform_slug="businessos", presented=setup.api_key) is not None
    # (Staff sign-ins are audited too: only the leads events matter here.)
    actions = set(
        AuditEvent.objects.filter(actor_type="user", action__startswith="leads.").values_list("action", flat=True)
    )
    assert actions == {"leads.platform_suspended", "leads.platform_reactivated"}


def test_platforms_cannot_be_deleted(staff):
    platform = make_platform().platform
    response = staff.post(reverse("admin:leads_partnerplatform_delete", args=[platform.pk]), {"post": "yes"})
    assert response.status_code == 403 and PartnerPlatform.objects.filter(pk=platform.pk).exists()


# --- API keys ---------------------------------------------------------------------------------------


def test_api_key_list_is_read_only_and_revoke_works(staff):
    setup = make_platform()
    key = PlatformApiKey.objects.get()
    listing = staff.get(reverse("admin:leads_platformapikey_changelist"))
    assert listing.status_code == 200
    body = listing.content.decode()
    assert key.key_hint in body and key.key_digest not in body and setup.api_key not in body

    change = staff.post(reverse("admin:leads_platformapikey_change", args=[key.pk]), {"revoked_at_0": ""})
    assert change.status_code == 403

    page = act(staff, "platformapikey", "revoke", [key.pk])
    assert page.status_code == 200 and PlatformApiKey.objects.get(pk=key.pk).revoked_at is None
    response = confirm(staff, "platformapikey", "revoke", [key.pk])
    assert response.status_code == 302
    assert PlatformApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert platforms.find_api_key(platform_slug="businessos", presented=setup.api_key) is None
    assert AuditEvent.objects.get(action="leads.api_key_revoked").actor_type == "user"


# --- RSA key pairs ----------------------------------------------------------------------------------


def test_rotate_shows_the_new_public_key_and_never_a_private_key(staff, settings):
    settings.CAREOS_PRIVATE_KEY = ""
    old = store_pair(rsa_pair(0))

    response = act(staff, "careoskeypair", "rotate", [old.pk])

    new = CareosKeyPair.objects.exclude(pk=old.pk).get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:leads_careoskeypair_change", args=[new.pk])
    assert crypto.current_public_pem() == new.public_pem
    page = staff.get(response["Location"]).content.decode()
    assert new.public_pem.strip().splitlines()[1] in page and "now the public key handed to partners" in page
    assert "PRIVATE KEY" not in page and new.private_pem.splitlines()[1] not in page
    listing = staff.get(reverse("admin:leads_careoskeypair_changelist")).content.decode()
    assert "PRIVATE KEY" not in listing and old.fingerprint[:16] in listing
    assert AuditEvent.objects.get(action="leads.rsa_key_created").actor_type == "user"


def test_retire_refuses_the_last_pair_and_retires_an_old_one(staff, settings):
    settings.CAREOS_PRIVATE_KEY = ""
    old = store_pair(rsa_pair(0))

    # The only pair is the one handed out: its fingerprint must be typed, and then the service refuses it.
    response = confirm(staff, "careoskeypair", "retire", [old.pk], confirmation=old.fingerprint)
    assert response.status_code == 302
    assert CareosKeyPair.objects.get(pk=old.pk).retired_at is None
    messages = [str(m) for m in staff.get(reverse("admin:leads_careoskeypair_changelist")).context["messages"]]
    assert any("only key pair" in m for m in messages)

    store_pair(rsa_pair(1))
    page = act(staff, "careoskeypair", "retire", [old.pk])
    assert page.status_code == 200 and CareosKeyPair.objects.get(pk=old.pk).retired_at is None
    confirm(staff, "careoskeypair", "retire", [old.pk])
    assert CareosKeyPair.objects.get(pk=old.pk).retired_at is not None
    assert AuditEvent.objects.get(action="leads.rsa_key_retired").subject_id == old.fingerprint


# --- Leads and users --------------------------------------------------------------------------------


def test_lead_list_shows_attribution_and_a_masked_phone_never_the_message(staff):
    platform = make_platform().platform
    lead = make_lead(platform)
    listing = staff.get(reverse("admin:leads_lead_changelist"))
    assert listing.status_code == 200
    body = listing.content.decode()
    assert lead.public_id in body and "+1 ••• ••• 0123" in body and "caregiver_hiring" in body
    assert PHONE not in body and "5550123" not in body and MESSAGE not in body and "John Doe" not in body


def test_lead_page_shows_the_message_masked_phone_and_is_read_only(staff):
    platform = make_platform().platform
    lead = make_lead(platform)
    url = reverse("admin:leads_lead_change", args=[lead.pk])
    page = staff.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert MESSAGE in body and "+1 ••• ••• 0123" in body and PHONE not in body
    assert lead.user.public_id in body

    assert staff.post(url, {"original_message": "changed"}).status_code == 403
    lead.refresh_from_db()
    assert lead.original_message == MESSAGE
    assert staff.get(reverse("admin:leads_lead_add")).status_code == 403
    assert staff.post(reverse("admin:leads_lead_delete", args=[lead.pk]), {"post": "yes"}).status_code == 403


def test_lead_filters(staff):
    businessos = make_platform("businessos").platform
    other = make_platform("otheros").platform
    first = make_lead(businessos, conversation="a", category="telehealth", is_new_user=True)
    second = make_lead(other, phone="+14155550199", conversation="b", is_new_user=False)
    Lead.objects.filter(pk=second.pk).update(created_at=datetime(2024, 3, 1, tzinfo=UTC))
    url = reverse("admin:leads_lead_changelist")

    def ids(**params) -> set[str]:
        response = staff.get(url, params)
        assert response.status_code == 200, params
        return {lead.public_id for lead in response.context["cl"].result_list}

    assert ids() == {first.public_id, second.public_id}
    assert ids(platform__id__exact=other.pk) == {second.public_id}
    assert ids(category="telehealth") == {first.public_id}
    assert ids(is_new_user__exact="0") == {second.public_id}
    assert ids(created_at__year="2024") == {second.public_id}
    assert ids(q=first.public_id) == {first.public_id}
    assert ids(q="+1 415 555 0199") == {second.public_id}


def test_users_masked_and_found_by_exact_phone_or_public_id(staff):
    platform = make_platform().platform
    lead = make_lead(platform)
    other = make_lead(platform, phone="+33612345678", conversation="c-2").user
    url = reverse("admin:leads_careuser_changelist")

    def found(term: str) -> set[str]:
        response = staff.get(url, {"q": term})
        assert response.status_code == 200
        return {user.public_id for user in response.context["cl"].result_list}

    assert found(PHONE) == {lead.user.public_id}
    assert found("(415) 555-0123") == {lead.user.public_id}
    assert found("+33 6 12 34 56 78") == {other.public_id}
    assert found("+14155550100") == set()
    assert found(other.public_id) == {other.public_id}
    listing = staff.get(url).content.decode()
    assert PHONE not in listing and "+33612345678" not in listing
    assert "+1 ••• ••• 0123" in listing and "+33 ••• ••• 5678" in listing and "businessos_referral" in listing

    page = staff.get(reverse("admin:leads_careuser_change", args=[lead.user.pk]))
    assert page.status_code == 200 and PHONE not in page.content.decode()
    assert lead.public_id in page.content.decode()
    assert staff.post(reverse("admin:leads_careuser_change", args=[lead.user.pk]), {}).status_code == 403


@pytest.mark.parametrize(
    "term",
    ["+14155550123", "+1 415 555 0123", "+1 (415) 555-0123", "(415) 555-0123", "415.555.0123", "4155550123"],
)
def test_phone_search_reads_the_forms_staff_type(term):
    assert phone_search_index(term) == blind_index("+14155550123", purpose="leads.user.phone")


@pytest.mark.parametrize("term", ["", "lead_abc", "12345", "+1 415 555", "+999 1234567"])
def test_phone_search_leaves_other_terms_to_the_normal_search(term):
    assert phone_search_index(term) is None


def test_partner_ids_duplicates_and_encrypted_fields_in_the_admin(staff):
    """The person's id at each partner, the unpaid duplicate's link and the encrypted location and
    subcategory are shown to staff; both kinds of user id are searchable."""
    alpha = make_platform("alpha").platform
    beta = make_platform("beta").platform
    paid = make_lead(alpha, conversation="a-1", location_city="San Francisco", subcategory="night_care")
    duplicate = make_lead(beta, conversation="b-1", duplicate_of=paid, location_state="CA")
    beta_id = duplicate.partner_user.public_id
    assert beta_id != paid.partner_user.public_id

    page = staff.get(reverse("admin:leads_lead_change", args=[paid.pk])).content.decode()
    assert "San Francisco" in page and "night_care" in page and paid.partner_user.public_id in page
    page = staff.get(reverse("admin:leads_lead_change", args=[duplicate.pk])).content.decode()
    assert beta_id in page and paid.public_id in page and ">CA<" in page

    listing = staff.get(reverse("admin:leads_lead_changelist"), {"q": beta_id})
    assert [lead.public_id for lead in listing.context["cl"].result_list] == [duplicate.public_id]
    assert "none (duplicate)" in listing.content.decode()
    users = staff.get(reverse("admin:leads_careuser_changelist"), {"q": beta_id})
    assert [user.pk for user in users.context["cl"].result_list] == [paid.user_id]
    user_page = staff.get(reverse("admin:leads_careuser_change", args=[paid.user_id])).content.decode()
    assert paid.partner_user.public_id in user_page and beta_id in user_page


def test_careos_lists_cut_long_ids_with_the_full_text_on_hover(staff):
    """The user, platform, key and key-pair lists fit 1,400 px: ids cut, in full in a title; short headers."""
    platform = make_platform().platform
    user = CareUser.objects.create(
        phone=PHONE,
        name="John Doe",
        phone_index=blind_index(PHONE, purpose="leads.user.phone"),
        source=platform.user_source,
        source_platform=platform,
    )
    pair = CareosKeyPair.objects.get()
    users = staff.get(reverse("admin:leads_careuser_changelist")).content.decode()
    assert f'title="{user.public_id}"' in users and mask_phone(PHONE) in users and PHONE not in users
    pairs = staff.get(reverse("admin:leads_careoskeypair_changelist")).content.decode()
    assert f'title="{pair.fingerprint}"' in pairs and f"{pair.fingerprint[:16]}…" in pairs
    assert "column-bits" in pairs and "column-handed_out_cell" in pairs
    page = staff.get(reverse("admin:leads_careoskeypair_change", args=[pair.pk])).content.decode()
    assert pair.fingerprint in page and "Public key handed to partners" in page
    keys = staff.get(reverse("admin:leads_platformapikey_changelist")).content.decode()
    assert "column-env" in keys and "column-revoked_at" not in keys and "valid" in keys
    platforms_page = staff.get(reverse("admin:leads_partnerplatform_changelist")).content.decode()
    assert "column-slug_short" in platforms_page and platform.name in platforms_page
