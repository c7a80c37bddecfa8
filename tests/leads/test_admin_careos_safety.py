"""Issue 14, CareOS admin made safe: each lead records the pair that decrypted it; retiring a pair that
decrypted a lead within CAREOS_KEY_RETIRE_GUARD_DAYS (service and admin) or the handed-out pair needs
its fingerprint typed; "Rotate" needs no selection; confirmation pages for revoke and suspend say what
stops and for whom; a platform's page links to everything of it and has its key actions as buttons."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.urls import reverse

from audit.models import AuditEvent
from core.time import utc_now
from leads import selectors
from leads.models import CareosKeyPair, Lead, PartnerPlatform, PlatformApiKey
from leads.services import platforms
from tests.leads.factories import ACTOR, INGEST, make_payment, make_platform, rsa_pair, store_pair

pytestmark = pytest.mark.django_db

PAIRS = "admin:leads_careoskeypair_changelist"


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser(username="admin", email="a@example.com", password="x" * 16)
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def _no_env_key(settings):
    settings.CAREOS_PRIVATE_KEY = ""
    settings.CAREOS_KEY_RETIRE_GUARD_DAYS = 30


def ingest(client, setup, conversation: str, phone: str = "+14155550123") -> Lead:
    body = setup.lead(phone=phone, source_conversation_id=conversation)
    response = client.post(INGEST, json.dumps(body), content_type="application/json", **setup.headers())
    assert response.status_code in (200, 201), response.content
    return Lead.objects.get(source_conversation_id=conversation)


def post_action(client, changelist: str, action: str, ids, **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(i) for i in ids], **extra}
    return client.post(reverse(changelist), data)


def messages_of(client, url_name: str = PAIRS) -> list[str]:
    return [str(m) for m in client.get(reverse(url_name)).context["messages"]]


# --- The pair that decrypted each lead --------------------------------------------------------------


def test_a_lead_records_the_pair_that_decrypted_it(client):
    setup = make_platform()  # pair 0, stored
    newer = store_pair(rsa_pair(1))  # handed out now; pair 0 still decrypts
    to_old = ingest(client, setup, "c-old")
    setup_new = setup.__class__(platform=setup.platform, api_key=setup.api_key, pair=newer)
    to_new = ingest(client, setup_new, "c-new", phone="+14155550124")
    assert (to_old.key_pair_id, to_new.key_pair_id) == (setup.pair.pk, newer.pk)

    uses = selectors.keypair_decrypts(pair=setup.pair)
    assert [(use.slug, use.at) for use in uses] == [("businessos", to_old.created_at)]


def test_a_lead_decrypted_by_the_environment_key_records_no_pair(client, settings):
    setup = make_platform()
    settings.CAREOS_PRIVATE_KEY = rsa_pair(0).private_pem
    CareosKeyPair.objects.all().delete()
    lead = ingest(client, setup, "c-env")
    assert lead.key_pair_id is None


# --- Retire: the service's guard --------------------------------------------------------------------


def test_the_service_refuses_a_recently_used_pair_unless_its_fingerprint_is_typed(client):
    setup = make_platform()
    store_pair(rsa_pair(1))
    ingest(client, setup, "c-1")
    old = setup.pair

    with pytest.raises(platforms.KeyPairRetireRefused) as refused:
        platforms.keypair_retire(pair=old, actor=ACTOR)
    assert refused.value.guard_days == 30 and refused.value.last_decrypted_at is not None
    with pytest.raises(platforms.KeyPairRetireRefused):
        platforms.keypair_retire(pair=old, actor=ACTOR, confirmed_fingerprint=old.fingerprint[:16])
    assert CareosKeyPair.objects.get(pk=old.pk).retired_at is None

    assert platforms.keypair_retire(pair=old, actor=ACTOR, confirmed_fingerprint=old.fingerprint.upper()) is True
    event = AuditEvent.objects.get(action="leads.rsa_key_retired")
    assert event.metadata["fingerprint_typed"] is True and event.metadata["decrypted_for"] == ["businessos"]


def test_the_guard_looks_back_the_configured_days(client, settings):
    setup = make_platform()
    store_pair(rsa_pair(1))
    lead = ingest(client, setup, "c-1")
    Lead.objects.filter(pk=lead.pk).update(created_at=utc_now() - timedelta(days=31))
    assert platforms.keypair_retire(pair=setup.pair, actor=ACTOR) is True  # older than 30 days: no typing


def test_a_guard_of_zero_days_turns_it_off(client, settings):
    settings.CAREOS_KEY_RETIRE_GUARD_DAYS = 0
    setup = make_platform()
    store_pair(rsa_pair(1))
    ingest(client, setup, "c-1")
    assert platforms.keypair_retire(pair=setup.pair, actor=ACTOR) is True


# --- Retire: the admin's confirmation page ----------------------------------------------------------


def test_retire_page_lists_platforms_last_decrypt_and_asks_for_the_fingerprint(client, staff):
    setup = make_platform()
    store_pair(rsa_pair(1))
    ingest(client, setup, "c-1")
    old = setup.pair
    call_command("generate_partner_keys", "acme", "live", stdout=StringIO())  # records acme got the newest

    page = post_action(staff, PAIRS, "retire", [old.pk])
    assert page.status_code == 200
    body = page.content.decode()
    assert "Leads it decrypted, by platform (latest)" in body and "businessos" in body
    assert "Last successful decrypt: " in body and "+00:00" not in body
    assert page.context["typed_label"] and old.fingerprint[:16] in page.context["typed_label"]
    assert CareosKeyPair.objects.get(pk=old.pk).retired_at is None

    wrong = post_action(staff, PAIRS, "retire", [old.pk], post="yes", confirmation="nope")
    assert wrong.status_code == 200 and wrong.context["typed_error"]
    assert CareosKeyPair.objects.get(pk=old.pk).retired_at is None

    done = post_action(staff, PAIRS, "retire", [old.pk], post="yes", confirmation=old.fingerprint)
    assert done.status_code == 302
    assert CareosKeyPair.objects.get(pk=old.pk).retired_at is not None
    assert any("Retired 1 key pair(s)." in m for m in messages_of(staff))


def test_retire_page_names_who_was_given_the_public_key(staff):
    call_command("generate_partner_keys", "acme", "live", stdout=StringIO())
    pair = CareosKeyPair.objects.get()
    store_pair(rsa_pair(1))
    assert [use.slug for use in selectors.keypair_handouts(pair=pair)] == ["acme"]
    body = post_action(staff, PAIRS, "retire", [pair.pk]).content.decode()
    assert "Public key given to: acme (acme)" in body
    page = staff.get(reverse("admin:leads_careoskeypair_change", args=[pair.pk])).content.decode()
    assert "public key given to (recorded)" in page.lower() and "acme (acme)" in page


def test_select_all_never_silently_retires_the_handed_out_pair(client, staff):
    """The issue's report: select all + Retire retired the key partners encrypt to."""
    old = store_pair(rsa_pair(0))
    current = store_pair(rsa_pair(1))  # handed out, never used yet

    page = post_action(staff, PAIRS, "retire", [old.pk, current.pk])
    body = page.content.decode()
    assert page.status_code == 200 and "This is the public key handed to partners now" in body
    assert current.fingerprint[:16] in page.context["typed_label"]
    # "Yes" without typing: the page again, nothing retired.
    again = post_action(staff, PAIRS, "retire", [old.pk, current.pk], post="yes")
    assert again.status_code == 200
    assert CareosKeyPair.objects.filter(retired_at__isnull=True).count() == 2
    # Typed: the old pair goes first, the handed-out one is then the last and is refused by the service.
    post_action(staff, PAIRS, "retire", [old.pk, current.pk], post="yes", confirmation=current.fingerprint)
    assert CareosKeyPair.objects.get(pk=old.pk).retired_at is not None
    assert CareosKeyPair.objects.get(pk=current.pk).retired_at is None
    assert any("only key pair" in m for m in messages_of(staff))


def test_two_guarded_pairs_at_once_are_refused_with_a_reason(client, staff):
    setup = make_platform()
    middle = store_pair(rsa_pair(1))
    ingest(client, setup, "c-1")
    store_pair(rsa_pair(2))
    setup_middle = setup.__class__(platform=setup.platform, api_key=setup.api_key, pair=middle)
    ingest(client, setup_middle, "c-2", phone="+14155550124")

    response = post_action(staff, PAIRS, "retire", [setup.pair.pk, middle.pk])
    assert response.status_code == 302
    assert CareosKeyPair.objects.filter(retired_at__isnull=False).count() == 0
    assert any("Retire them one at a time" in m for m in messages_of(staff))


def test_retire_page_warns_when_every_active_pair_is_selected(staff):
    only = store_pair(rsa_pair(0))
    page = post_action(staff, PAIRS, "retire", [only.pk])
    assert "You selected every active pair" in page.context["warning"]


# --- Rotate ------------------------------------------------------------------------------------------


def test_rotate_needs_no_selection(staff):
    store_pair(rsa_pair(0))
    response = staff.post(reverse(PAIRS), {"action": "rotate", "index": "0"})
    new = CareosKeyPair.objects.order_by("-created_at", "-pk").first()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:leads_careoskeypair_change", args=[new.pk])
    assert CareosKeyPair.objects.count() == 2


def test_rotate_says_it_ignores_a_selection(staff):
    old = store_pair(rsa_pair(0))
    response = staff.post(reverse(PAIRS), {"action": "rotate", "index": "0", ACTION_CHECKBOX_NAME: [str(old.pk)]})
    shown = [str(m) for m in staff.get(response["Location"]).context["messages"]]
    assert any("does not use the ticked rows" in m for m in shown)
    assert CareosKeyPair.objects.get(pk=old.pk).retired_at is None


def test_rotate_without_selection_needs_the_manage_permission(client, django_user_model):
    store_pair(rsa_pair(0))
    viewer = django_user_model.objects.create_user(username="viewer", password="x" * 16, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_careoskeypair"))
    client.force_login(viewer)
    client.post(reverse(PAIRS), {"action": "rotate", "index": "0"})
    assert CareosKeyPair.objects.count() == 1


# --- Revoke and suspend confirmation pages ------------------------------------------------------------


def test_revoke_page_says_the_platform_has_no_other_live_key(staff):
    setup = make_platform()
    key = PlatformApiKey.objects.get()
    page = post_action(staff, "admin:leads_platformapikey_changelist", "revoke", [key.pk])
    body = page.content.decode()
    assert page.templates[0].name == "admin/confirm_action.html"
    assert "has no other valid live key" in body and setup.platform.name in body
    assert PlatformApiKey.objects.get().revoked_at is None

    platforms.api_key_create(platform=setup.platform, environment="live", actor=ACTOR)
    body = post_action(staff, "admin:leads_platformapikey_changelist", "revoke", [key.pk]).content.decode()
    assert "keeps 1 other valid live key(s)" in body


def test_suspend_page_says_which_keys_stop_and_what_money_is_held(staff):
    setup = make_platform()
    make_payment(setup.platform, amount="25.00")
    page = post_action(staff, "admin:leads_partnerplatform_changelist", "suspend", [setup.platform.pk])
    body = page.content.decode()
    assert "Its 1 valid live and 0 valid test API key(s) are" in body
    assert "1 pending payment(s) (25.00 USD) are held" in body
    assert PartnerPlatform.objects.get().status == "active"


# --- The platform's own page --------------------------------------------------------------------------


def test_platform_page_links_to_everything_of_it(staff):
    setup = make_platform()
    page = staff.get(reverse("admin:leads_partnerplatform_change", args=[setup.platform.pk]))
    links = dict(page.context["platform_links"])
    assert set(links) == {
        "API keys",
        "Leads",
        "Payments",
        "Payout batches",
        "Audit events about it",
        "Audit events by it",
        "Its API requests",
    }
    for label, url in links.items():
        response = staff.get(url)
        assert response.status_code == 200, label  # a lookup the list refused would redirect with ?e=1
    about = staff.get(links["Audit events about it"])
    assert all(row.subject_id == "businessos" for row in about.context["cl"].result_list)
    assert about.context["cl"].result_count >= 2  # created, API key created
    body = page.content.decode()
    assert reverse("admin:leads_platform_create_live_key", args=[setup.platform.pk]) in body
    assert reverse("admin:leads_platform_suspend", args=[setup.platform.pk]) in body


def test_platform_buttons_create_a_key_shown_once_suspend_after_confirming_and_reactivate(staff):
    setup = make_platform()
    pk = setup.platform.pk

    assert staff.get(reverse("admin:leads_platform_create_test_key", args=[pk])).status_code == 405
    shown = staff.post(reverse("admin:leads_platform_create_test_key", args=[pk]))
    assert shown.status_code == 200 and "no-store" in shown["Cache-Control"]
    assert "businessos_test_" in shown.content.decode()
    assert PlatformApiKey.objects.filter(environment="test").count() == 1

    page = staff.post(reverse("admin:leads_platform_suspend", args=[pk]))
    assert page.status_code == 200 and "refused (401)" in page.content.decode()
    assert page.context["form_action"] == reverse("admin:leads_platform_suspend", args=[pk])
    assert PartnerPlatform.objects.get().status == "active"
    done = staff.post(reverse("admin:leads_platform_suspend", args=[pk]), {"post": "yes"})
    assert done.status_code == 302 and done["Location"] == reverse("admin:leads_partnerplatform_change", args=[pk])
    assert PartnerPlatform.objects.get().status == "suspended"

    staff.post(reverse("admin:leads_platform_reactivate", args=[pk]))
    assert PartnerPlatform.objects.get().status == "active"
    actions = list(
        AuditEvent.objects.filter(actor_type="user", action__startswith="leads.")
        .order_by("pk")
        .values_list("action", flat=True)
    )
    assert actions == ["leads.api_key_created", "leads.platform_suspended", "leads.platform_reactivated"]


def test_platform_buttons_need_the_manage_permission(client, django_user_model):
    setup = make_platform()
    viewer = django_user_model.objects.create_user(username="viewer", password="x" * 16, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_partnerplatform"))
    client.force_login(viewer)
    page = client.get(reverse("admin:leads_partnerplatform_change", args=[setup.platform.pk]))
    assert page.status_code == 200 and page.context["platform_buttons"] == []
    for name in ("create_live_key", "suspend", "reactivate"):
        response = client.post(reverse(f"admin:leads_platform_{name}", args=[setup.platform.pk]), {"post": "yes"})
        assert response.status_code == 403, name
    assert PlatformApiKey.objects.count() == 1 and PartnerPlatform.objects.get().status == "active"


def test_key_creation_message_shows_the_expiry_as_staff_read_it(staff):
    setup = make_platform()
    body = staff.post(reverse("admin:leads_platform_create_live_key", args=[setup.platform.pk])).content.decode()
    assert " UTC;" in body and "+00:00" not in body


def test_a_pairs_decrypts_are_one_query_however_many_leads(client, django_assert_num_queries):
    setup = make_platform()
    for n in range(3):
        ingest(client, setup, f"c-{n}", phone=f"+1415555012{n}")
    with django_assert_num_queries(1):
        uses = selectors.keypair_decrypts(pair=setup.pair)
    assert [use.slug for use in uses] == ["businessos"]
