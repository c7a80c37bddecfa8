"""Builders for CareOS tests.

setup = make_platform()            # businessos, one live key, one RSA-2048 pair in the database
body = setup.lead(phone="+14155550123")   # a valid request body, phone encrypted + hashed
client.post(INGEST, body, content_type="application/json", **setup.headers())
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from leads import crypto
from leads.models import CareosKeyPair, PartnerPlatform
from leads.services.platforms import api_key_create, platform_create

INGEST = "/api/leads/ingest"


@lru_cache(maxsize=4)
def rsa_pair(n: int = 0) -> crypto.GeneratedPair:
    """RSA-2048 pairs generated once per test run (key generation is the slow part)."""
    return crypto.generate_pair(2048)


def store_pair(pair: crypto.GeneratedPair) -> CareosKeyPair:
    return CareosKeyPair.objects.create(
        fingerprint=pair.fingerprint, public_pem=pair.public_pem, private_pem=pair.private_pem, key_size=pair.key_size
    )


def encrypt_phone(phone: str, public_pem: str, *, hash_algorithm=None) -> str:
    key = serialization.load_pem_public_key(public_pem.encode())
    algorithm = hash_algorithm or hashes.SHA256()
    ciphertext = key.encrypt(
        phone.encode("utf-8"), padding.OAEP(mgf=padding.MGF1(algorithm=algorithm), algorithm=algorithm, label=None)
    )
    return base64.b64encode(ciphertext).decode("ascii")


def hash_phone(phone: str, salt: str) -> str:
    return hashlib.sha256((phone + salt).encode("utf-8")).hexdigest()


@dataclass
class PlatformSetup:
    platform: PartnerPlatform
    api_key: str
    pair: CareosKeyPair

    def headers(self, api_key: str | None = None, platform: str | None = None) -> dict[str, str]:
        return {"HTTP_X_API_KEY": api_key or self.api_key, "HTTP_X_PLATFORM": platform or self.platform.slug}

    def lead(self, phone: str = "+14155550123", **overrides) -> dict:
        body = {
            "source_platform": self.platform.slug,
            "source_conversation_id": "bizos-lead-12345",
            "user_phone_hash": hash_phone(phone, self.platform.phone_hash_salt),
            "user_phone_encrypted": encrypt_phone(phone, self.pair.public_pem),
            "user_name": "John Doe",
            "user_language": "en",
            "user_location_state": "CA",
            "user_location_country": "US",
            "user_location_city": "San Francisco",
            "category": "healthcare",
            "subcategory": "caregiver_hiring",
            "original_message": "I need help finding a caregiver for my mom who has mobility issues",
            "ai_extracted_details": {
                "urgency": "medium",
                "person_mentioned": "mom",
                "service_type": "caregiver",
                "condition_mentioned": "mobility issues",
            },
            "user_consent": True,
            "consent_timestamp": "2025-01-08T12:00:00Z",
            "lead_value_agreed": 15.00,
        }
        body.update(overrides)
        return body


def make_platform(slug: str = "businessos", *, pair_index: int = 0, **platform_fields) -> PlatformSetup:
    platform = platform_create(slug=slug, actor_type="system", actor_id="tests", **platform_fields)
    issued = api_key_create(platform=platform, environment="live", actor_type="system", actor_id="tests")
    pair = CareosKeyPair.objects.filter(fingerprint=rsa_pair(pair_index).fingerprint).first() or store_pair(
        rsa_pair(pair_index)
    )
    return PlatformSetup(platform=platform, api_key=issued.full_key, pair=pair)
