"""seed_demo's "careos" key: platform businessos, the demo API key, CareOS's public key and the salt."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.db import transaction

from audit.models import AuditEvent
from core.actors import Actor
from leads import crypto, demo
from leads.models import CareosKeyPair, CareUser, Lead, PartnerPlatform, PlatformApiKey
from leads.services.platforms import api_key_revoke, find_api_key, platform_suspend
from tests.leads.factories import INGEST, encrypt_phone, hash_phone, rsa_pair, store_pair

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_env_key(settings):
    settings.CAREOS_PRIVATE_KEY = ""


class Ctx:
    """What leads.demo.seed uses of seed_demo's SeedContext (the full command also seeds LoveRescue's
    90 days of data, which is slow: it runs once, in the first test)."""

    def __init__(self):
        self.changes: list[str] = []

    def changed(self, message: str) -> None:
        self.changes.append(message)

    def log(self, message: str) -> None:
        pass


def seed() -> dict:
    with transaction.atomic():
        key, value = demo.seed(Ctx())
    assert key == "careos"
    return value


def test_seed_demo_json_has_the_careos_key():
    out = io.StringIO()
    call_command("seed_demo", "--json", stdout=out, stderr=io.StringIO())
    data = json.loads(out.getvalue())["careos"]
    assert data == seed()  # the same values as the contributor alone, once the rows exist
    assert set(data) == {"platform", "apiKey", "publicKeyPem", "phoneHashSalt"}


def counts() -> dict[str, int]:
    return {
        "platforms": PartnerPlatform.objects.count(),
        "keys": PlatformApiKey.objects.count(),
        "pairs": CareosKeyPair.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


def test_careos_key_has_exactly_the_documented_fields_and_they_work():
    data = seed()

    assert set(data) == {"platform", "apiKey", "publicKeyPem", "phoneHashSalt"}
    assert data["platform"] == "businessos" and data["apiKey"] == demo.DEMO_API_KEY
    assert data["apiKey"].startswith("businessos_live_")
    key = find_api_key(platform_slug="businessos", presented=data["apiKey"])
    assert key is not None and key.expires_at is None
    platform = PartnerPlatform.objects.get(slug="businessos")
    assert data["phoneHashSalt"] == platform.phone_hash_salt == demo.DEMO_PHONE_HASH_SALT
    pair = CareosKeyPair.objects.get()
    assert data["publicKeyPem"] == pair.public_pem == crypto.current_public_pem()
    assert crypto.decrypt_phone(encrypt_phone("+14155550123", data["publicKeyPem"])) == "+14155550123"
    assert demo.DEMO_API_KEY not in json.dumps(list(AuditEvent.objects.values_list("metadata", flat=True)))


def test_second_run_prints_the_same_and_creates_nothing():
    first = seed()
    before = counts()
    ctx = Ctx()
    with transaction.atomic():
        second = demo.seed(ctx)[1]
    assert second == first
    assert counts() == before and ctx.changes == []


def test_existing_pair_or_environment_key_is_reused(settings):
    pair = store_pair(rsa_pair(0))
    assert seed()["publicKeyPem"] == pair.public_pem
    assert CareosKeyPair.objects.count() == 1

    CareosKeyPair.objects.all().delete()
    settings.CAREOS_PRIVATE_KEY = rsa_pair(1).private_pem
    assert seed()["publicKeyPem"] == rsa_pair(1).public_pem
    assert not CareosKeyPair.objects.exists()


def test_repairs_a_revoked_key_and_a_suspended_platform():
    seed()
    platform = PartnerPlatform.objects.get(slug="businessos")
    key = PlatformApiKey.objects.get(key_id=demo.DEMO_KEY_ID)
    api_key_revoke(api_key=key, actor=Actor.system("tests"))
    platform_suspend(platform=platform, actor=Actor.system("tests"))
    assert find_api_key(platform_slug="businessos", presented=demo.DEMO_API_KEY) is None

    seed()

    assert find_api_key(platform_slug="businessos", presented=demo.DEMO_API_KEY) is not None
    reset = AuditEvent.objects.get(action="leads.api_key_reset")
    assert reset.metadata["fields"] == ["revoked_at"]
    assert AuditEvent.objects.filter(action="leads.platform_reactivated").count() == 1


def test_an_existing_platform_keeps_its_own_salt():
    from leads.services.platforms import platform_create

    platform = platform_create(slug="businessos", actor=Actor.system("tests"))
    data = seed()
    assert data["phoneHashSalt"] == platform.phone_hash_salt != demo.DEMO_PHONE_HASH_SALT


def test_a_lead_encrypted_and_hashed_with_the_demo_values_ingests(client):
    data = seed()
    phone = "+14155550123"
    body = {
        "source_platform": data["platform"],
        "source_conversation_id": "demo-lead-1",
        "user_phone_hash": hash_phone(phone, data["phoneHashSalt"]),
        "user_phone_encrypted": encrypt_phone(phone, data["publicKeyPem"]),
        "user_name": "Test User",
        "user_language": "en",
        "category": "healthcare",
        "subcategory": "caregiver_hiring",
        "original_message": "I need a caregiver for my mom",
        "ai_extracted_details": {"urgency": "medium", "person_mentioned": "mom", "service_type": "caregiver"},
        "user_consent": True,
        "consent_timestamp": "2025-01-08T12:00:00Z",
        "lead_value_agreed": 10,
    }
    response = client.post(
        INGEST, body, content_type="application/json", HTTP_X_API_KEY=data["apiKey"], HTTP_X_PLATFORM=data["platform"]
    )
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["success"] is True and answer["is_new_user"] is True
    lead = Lead.objects.get(public_id=answer["careos_lead_id"])
    assert lead.platform.slug == "businessos" and lead.partner_user.public_id == answer["careos_user_id"]
    assert CareUser.objects.get().phone == phone
