"""`manage.py generate_partner_keys PLATFORM live|test`: platform, API key (shown once), RSA pair if needed."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from core.actors import Actor
from core.apikeys import key_digest
from core.time import utc_now
from leads import crypto
from leads.models import CareosKeyPair, PartnerPlatform, PlatformApiKey
from leads.services.platforms import find_api_key, platform_suspend
from tests.leads.factories import encrypt_phone, hash_phone, rsa_pair, store_pair

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_env_key(settings):
    settings.CAREOS_PRIVATE_KEY = ""


def generate(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("generate_partner_keys", *args, "--rsa-bits", "2048", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def generate_json(*args: str) -> dict:
    return json.loads(generate(*args, "--json")[0])


def counts() -> dict[str, int]:
    return {
        "platforms": PartnerPlatform.objects.count(),
        "keys": PlatformApiKey.objects.count(),
        "pairs": CareosKeyPair.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


def test_first_run_creates_platform_key_and_pair_and_prints_what_the_partner_needs():
    before = utc_now()
    data = generate_json("businessos", "live")

    assert set(data) == {
        "platform",
        "environment",
        "apiKey",
        "expiresAt",
        "publicKeyPem",
        "phoneHashSalt",
        "createdPlatform",
        "createdKeyPair",
    }
    assert (data["platform"], data["environment"], data["createdPlatform"], data["createdKeyPair"]) == (
        "businessos",
        "live",
        True,
        True,
    )
    platform = PartnerPlatform.objects.get(slug="businessos")
    assert data["phoneHashSalt"] == platform.phone_hash_salt
    assert data["apiKey"].startswith("businessos_live_")
    key = find_api_key(platform_slug="businessos", presented=data["apiKey"])
    assert key is not None and key.key_digest == key_digest(data["apiKey"])
    expires = datetime.fromisoformat(data["expiresAt"].replace("Z", "+00:00"))
    assert before + timedelta(days=90) - timedelta(seconds=1) <= expires <= utc_now() + timedelta(days=90)
    pair = CareosKeyPair.objects.get()
    assert data["publicKeyPem"] == pair.public_pem and pair.key_size == 2048
    # Stored hashed, never in clear; the audit trail names the key id only.
    assert not PlatformApiKey.objects.filter(key_hint__contains=data["apiKey"]).exists()
    audit = json.dumps(list(AuditEvent.objects.values_list("metadata", flat=True)))
    assert data["apiKey"] not in audit and data["phoneHashSalt"] not in audit
    assert {"leads.platform_created", "leads.api_key_created", "leads.rsa_key_created"} <= set(
        AuditEvent.objects.values_list("action", flat=True)
    )

    # What the partner does with it (the spec's encryption and hashing) works with what CareOS holds.
    phone = "+14155550123"
    assert crypto.decrypt_phone(encrypt_phone(phone, data["publicKeyPem"])) == phone
    assert hash_phone(phone, data["phoneHashSalt"]) == hash_phone(phone, platform.phone_hash_salt)


def test_second_run_rotates_the_api_key_and_keeps_the_pair():
    first = generate_json("businessos", "live")
    second = generate_json("businessos", "live")

    assert second["createdPlatform"] is False and second["createdKeyPair"] is False
    assert second["apiKey"] != first["apiKey"]
    assert second["publicKeyPem"] == first["publicKeyPem"] and second["phoneHashSalt"] == first["phoneHashSalt"]
    assert CareosKeyPair.objects.count() == 1 and PartnerPlatform.objects.count() == 1
    # Both keys valid until expiry or revocation.
    assert find_api_key(platform_slug="businessos", presented=first["apiKey"]) is not None
    assert find_api_key(platform_slug="businessos", presented=second["apiKey"]) is not None

    test_key = generate_json("businessos", "test")
    assert test_key["apiKey"].startswith("businessos_test_")
    assert find_api_key(platform_slug="businessos", presented=test_key["apiKey"]).environment == "test"


def test_rotate_rsa_adds_a_pair_and_the_old_one_still_decrypts():
    first = generate_json("businessos", "live")
    rotated = generate_json("businessos", "live", "--rotate-rsa")

    assert rotated["createdKeyPair"] is True and rotated["publicKeyPem"] != first["publicKeyPem"]
    assert CareosKeyPair.objects.filter(retired_at__isnull=True).count() == 2
    assert crypto.current_public_pem() == rotated["publicKeyPem"]
    for pem, phone in ((first["publicKeyPem"], "+14155550123"), (rotated["publicKeyPem"], "+33612345678")):
        assert crypto.decrypt_phone(encrypt_phone(phone, pem)) == phone


def test_an_environment_key_means_no_pair_is_created(settings):
    settings.CAREOS_PRIVATE_KEY = rsa_pair(1).private_pem.replace("\n", "\\n")  # as a one-line .env value

    data = generate_json("businessos", "live")

    assert data["createdKeyPair"] is False and not CareosKeyPair.objects.exists()
    assert data["publicKeyPem"] == rsa_pair(1).public_pem


def test_an_existing_active_pair_is_reused():
    pair = store_pair(rsa_pair(0))
    data = generate_json("businessos", "live")
    assert data["createdKeyPair"] is False and data["publicKeyPem"] == pair.public_pem
    assert CareosKeyPair.objects.count() == 1


def test_expires_days_zero_means_never_and_a_custom_value_applies():
    assert generate_json("businessos", "live", "--expires-days", "0")["expiresAt"] is None
    data = generate_json("businessos", "live", "--expires-days", "30")
    key = find_api_key(platform_slug="businessos", presented=data["apiKey"])
    assert timedelta(days=29, hours=23) < key.expires_at - utc_now() <= timedelta(days=30)


@pytest.mark.parametrize(
    "args,message",
    [
        (("BusinessOS", "live"), "Invalid platform name"),
        (("b", "live"), "Invalid platform name"),
        (("busi-ness", "live"), "Invalid platform name"),
        (("1business", "live"), "Invalid platform name"),
        (("a" * 41, "live"), "Invalid platform name"),
        (("businessos", "prod"), "Invalid environment"),
        (("businessos", "LIVE"), "Invalid environment"),
        (("businessos", "live", "--expires-days", "-1"), "--expires-days"),
        (("businessos", "live", "--expires-days", "99999"), "--expires-days"),
    ],
)
def test_bad_input_is_a_command_error_and_writes_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("generate_partner_keys", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert counts() == {"platforms": 0, "keys": 0, "pairs": 0, "audit": 0}


def test_bad_rsa_size_writes_nothing():
    with pytest.raises(CommandError, match="--rsa-bits"):
        call_command("generate_partner_keys", "businessos", "live", "--rsa-bits", "1024", stdout=io.StringIO())
    assert counts() == {"platforms": 0, "keys": 0, "pairs": 0, "audit": 0}


def test_text_output_shows_the_key_salt_and_public_key():
    out, err = generate("businessos", "live")
    platform = PartnerPlatform.objects.get(slug="businessos")
    pair = CareosKeyPair.objects.get()
    key_line = next(line.strip() for line in out.splitlines() if line.strip().startswith("businessos_live_"))
    assert find_api_key(platform_slug="businessos", presented=key_line) is not None
    assert f'PHONE_HASH_SALT="{platform.phone_hash_salt}"' in out
    assert pair.public_pem.strip() in out
    assert "PRIVATE KEY" not in out and "Created platform businessos" in out and err == ""


def test_a_suspended_platform_gets_a_key_and_a_warning():
    generate_json("businessos", "live")
    platform_suspend(platform=PartnerPlatform.objects.get(slug="businessos"), actor=Actor.system("t"))
    out, err = generate("businessos", "live", "--json")
    assert json.loads(out)["createdPlatform"] is False
    assert "suspended" in err
