"""leads.services.platforms: platforms, API keys (rotation, expiry, revocation) and RSA pairs, each audited."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from audit.models import AuditEvent
from core.actors import Actor
from core.time import utc_now
from leads import crypto
from leads.models import CareosKeyPair, PartnerPlatform, PlatformApiKey
from leads.services import platforms
from tests.leads.factories import encrypt_phone, make_platform, rsa_pair, store_pair

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("tests")


def audit_text() -> str:
    return json.dumps(list(AuditEvent.objects.values("action", "subject_id", "metadata")), default=str)


# --- Platforms --------------------------------------------------------------------------------------


def test_platform_create_has_a_fresh_salt_and_is_audited():
    first = platforms.platform_create(slug="businessos", actor=ACTOR)
    second = platforms.platform_create(slug="otheros", minimum_payout=10, actor=ACTOR)
    assert len(first.phone_hash_salt) == 64 and first.phone_hash_salt != second.phone_hash_salt
    assert second.minimum_payout == Decimal("10.00") and first.name == "businessos"
    event = AuditEvent.objects.get(action="leads.platform_created", subject_id="businessos")
    assert event.actor_type == "system" and event.metadata == {"payout_backend": "manual"}
    assert first.phone_hash_salt not in audit_text()


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"slug": "BusinessOS"}, "lowercase letters"),
        ({"slug": "b"}, "lowercase letters"),
        ({"slug": "1abc"}, "lowercase letters"),
        ({"slug": "busi-ness"}, "lowercase letters"),
        ({"slug": "a" * 41}, "lowercase letters"),
        ({"slug": "ok", "minimum_payout": Decimal("-1")}, "0 or more"),
        ({"slug": "ok", "minimum_payout": "lots"}, "0 or more"),
        ({"slug": "ok", "payout_backend": "paypal"}, "'manual' or 'stripe'"),
        ({"slug": "ok", "payout_backend": "stripe"}, "connected account"),
        ({"slug": "ok", "payout_backend": "stripe", "stripe_account_id": "acct_1; drop"}, "acct_"),
    ],
)
def test_platform_create_refuses_bad_input_and_writes_nothing(fields, message):
    with pytest.raises(platforms.PlatformInvalid, match=message):
        platforms.platform_create(**fields, actor=ACTOR)
    assert not PartnerPlatform.objects.exists() and not AuditEvent.objects.exists()


def test_platform_create_refuses_a_duplicate():
    platforms.platform_create(slug="businessos", actor=ACTOR)
    with pytest.raises(platforms.PlatformInvalid, match="already exists"):
        platforms.platform_create(slug="businessos", actor=ACTOR)


def test_platform_update_changes_only_what_is_given_and_audits_without_contact_details():
    platform = platforms.platform_create(slug="businessos", contact_email="old@example.com", actor=ACTOR)
    salt = platform.phone_hash_salt

    updated = platforms.platform_update(
        platform=platform,
        contact_email="pay@businessos.example",
        minimum_payout="75",
        payout_backend="stripe",
        stripe_account_id="acct_1Abc",
        actor=ACTOR,
    )

    fresh = PartnerPlatform.objects.get(pk=platform.pk)
    assert (fresh.contact_email, fresh.minimum_payout, fresh.payout_backend, fresh.stripe_account_id) == (
        "pay@businessos.example",
        Decimal("75.00"),
        "stripe",
        "acct_1Abc",
    )
    assert updated.minimum_payout == Decimal("75.00") and fresh.phone_hash_salt == salt and fresh.name == "businessos"
    event = AuditEvent.objects.get(action="leads.platform_updated")
    assert event.metadata["changed"] == ["contact_email", "minimum_payout", "payout_backend", "stripe_account_id"]
    assert event.metadata["minimum_payout"] == "75.00" and event.metadata["payout_backend"] == "stripe"
    assert "pay@businessos.example" not in audit_text() and "old@example.com" not in audit_text()

    # Nothing changed: no event.
    platforms.platform_update(platform=fresh, minimum_payout=Decimal("75"), actor=ACTOR)
    assert AuditEvent.objects.filter(action="leads.platform_updated").count() == 1


def test_platform_update_refuses_stripe_without_an_account():
    platform = platforms.platform_create(slug="businessos", actor=ACTOR)
    with pytest.raises(platforms.PlatformInvalid, match="connected account"):
        platforms.platform_update(platform=platform, payout_backend="stripe", actor=ACTOR)
    assert PartnerPlatform.objects.get(pk=platform.pk).payout_backend == "manual"
    assert not AuditEvent.objects.filter(action="leads.platform_updated").exists()


def test_suspend_refuses_the_keys_and_reactivate_accepts_them_again():
    setup = make_platform()
    platform = setup.platform
    assert platforms.find_api_key(platform_slug="businessos", presented=setup.api_key) is not None

    assert platforms.platform_suspend(platform=platform, actor=ACTOR) is True
    assert platforms.platform_suspend(platform=platform, actor=ACTOR) is False
    assert platforms.find_api_key(platform_slug="businessos", presented=setup.api_key) is None

    assert platforms.platform_reactivate(platform=platform, actor=ACTOR) is True
    assert platforms.platform_reactivate(platform=platform, actor=ACTOR) is False
    assert platforms.find_api_key(platform_slug="businessos", presented=setup.api_key) is not None
    actions = list(AuditEvent.objects.filter(subject_id="businessos").values_list("action", flat=True))
    assert actions.count("leads.platform_suspended") == 1 and actions.count("leads.platform_reactivated") == 1


# --- API keys ---------------------------------------------------------------------------------------


def test_two_keys_are_valid_at_once_until_expiry_or_revocation():
    platform = platforms.platform_create(slug="businessos", actor=ACTOR)
    now = utc_now()
    old = platforms.api_key_create(
        platform=platform, environment="live", expires_at=now + timedelta(days=1), actor=ACTOR
    )
    new = platforms.api_key_create(
        platform=platform, environment="live", expires_at=platforms.default_api_key_expiry(now), actor=ACTOR
    )
    assert new.api_key.expires_at == now + timedelta(days=90)
    assert new.full_key.startswith("businessos_live_") and new.full_key != old.full_key
    stored = PlatformApiKey.objects.get(pk=new.api_key.pk)
    assert stored.key_digest == platforms.key_digest(new.full_key) and new.full_key not in stored.key_hint

    for issued in (old, new):
        assert platforms.find_api_key(platform_slug="businessos", presented=issued.full_key, now=now) == issued.api_key
    # The old key expires: the new one still works (rotation without downtime).
    later = now + timedelta(days=1, seconds=1)
    assert platforms.find_api_key(platform_slug="businessos", presented=old.full_key, now=later) is None
    assert platforms.find_api_key(platform_slug="businessos", presented=new.full_key, now=later) is not None

    assert platforms.api_key_revoke(api_key=new.api_key, now=now, actor=ACTOR) is True
    assert platforms.api_key_revoke(api_key=new.api_key, actor=ACTOR) is False
    assert PlatformApiKey.objects.get(pk=new.api_key.pk).revoked_at == now
    assert platforms.find_api_key(platform_slug="businessos", presented=new.full_key, now=now) is None
    event = AuditEvent.objects.get(action="leads.api_key_revoked")
    assert event.metadata == {"key_id": new.api_key.key_id, "environment": "live"}
    text = audit_text()
    assert new.full_key not in text and old.full_key not in text


def test_a_key_only_works_for_its_own_platform_and_test_keys_work_too():
    businessos = make_platform("businessos")
    other = make_platform("otheros")
    test_key = platforms.api_key_create(platform=businessos.platform, environment="test", actor=ACTOR)
    assert platforms.find_api_key(platform_slug="businessos", presented=test_key.full_key) == test_key.api_key
    assert platforms.find_api_key(platform_slug="otheros", presented=businessos.api_key) is None
    assert platforms.find_api_key(platform_slug="businessos", presented=other.api_key) is None
    tampered = businessos.api_key[:-1] + ("A" if businessos.api_key[-1] != "A" else "B")
    assert platforms.find_api_key(platform_slug="businessos", presented=tampered) is None


def test_api_key_create_refuses_a_bad_environment_or_a_past_expiry():
    platform = platforms.platform_create(slug="businessos", actor=ACTOR)
    with pytest.raises(platforms.PlatformInvalid, match="'live' or 'test'"):
        platforms.api_key_create(platform=platform, environment="prod", actor=ACTOR)
    with pytest.raises(platforms.PlatformInvalid, match="future"):
        platforms.api_key_create(
            platform=platform, environment="live", expires_at=utc_now() - timedelta(seconds=1), actor=ACTOR
        )
    assert not PlatformApiKey.objects.exists()


# --- RSA pairs --------------------------------------------------------------------------------------


def test_rotation_then_retirement_of_the_old_pair():
    old = store_pair(rsa_pair(0))
    new = platforms.keypair_create(key_size=2048, actor=ACTOR)
    assert crypto.current_public_pem() == new.public_pem
    to_old = encrypt_phone("+14155550123", old.public_pem)
    to_new = encrypt_phone("+14155550124", new.public_pem)
    assert crypto.decrypt_phone(to_old) == "+14155550123"  # both decrypt during the rotation
    assert crypto.decrypt_phone(to_new) == "+14155550124"

    now = utc_now()
    assert platforms.keypair_retire(pair=old, now=now, actor=ACTOR) is True
    assert platforms.keypair_retire(pair=old, actor=ACTOR) is False
    assert CareosKeyPair.objects.get(pk=old.pk).retired_at == now
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt_phone(to_old)
    assert crypto.decrypt_phone(to_new) == "+14155550124"
    assert AuditEvent.objects.get(action="leads.rsa_key_retired").subject_id == old.fingerprint
    created = AuditEvent.objects.get(action="leads.rsa_key_created")
    assert created.subject_id == new.fingerprint and created.metadata == {"key_size": 2048}
    assert "PRIVATE KEY" not in audit_text()


def test_the_last_pair_able_to_decrypt_cannot_be_retired(settings):
    settings.CAREOS_PRIVATE_KEY = ""
    only = store_pair(rsa_pair(0))
    with pytest.raises(platforms.PlatformInvalid, match="only key pair"):
        platforms.keypair_retire(pair=only, actor=ACTOR)
    assert CareosKeyPair.objects.get(pk=only.pk).retired_at is None

    # With CAREOS_PRIVATE_KEY set, something still decrypts: allowed.
    settings.CAREOS_PRIVATE_KEY = rsa_pair(1).private_pem
    assert platforms.keypair_retire(pair=only, actor=ACTOR) is True
    assert crypto.decrypt_phone(encrypt_phone("+14155550123", rsa_pair(1).public_pem)) == "+14155550123"


def test_a_key_is_found_with_its_whole_platform_in_one_query(django_assert_num_queries):
    """leads.selectors.unrevoked_api_key (compiled once, core.compiled_query): the key and its platform, every
    field as the ORM reads it (the encrypted salt and contact decrypted, times aware), in one query."""
    setup = make_platform("fieldcheck", contact_email="ops@example.org")
    platform = PartnerPlatform.objects.get(pk=setup.platform.pk)
    with django_assert_num_queries(1):
        found = platforms.find_api_key(platform_slug="fieldcheck", presented=setup.api_key)
        assert found.platform.phone_hash_salt == platform.phone_hash_salt
    stored = PlatformApiKey.objects.get(pk=found.pk)
    for field in PlatformApiKey._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(stored, field.attname), field.name
    for field in PartnerPlatform._meta.concrete_fields:
        assert getattr(found.platform, field.attname) == getattr(platform, field.attname), field.name
    assert found.platform.contact_email == "ops@example.org" and found.created_at.tzinfo is not None
    assert not found._state.adding and not found.platform._state.adding
    wrong_environment = setup.api_key.replace("_live_", "_test_", 1)
    assert platforms.find_api_key(platform_slug="fieldcheck", presented=wrong_environment) is None
