"""Builders for CareOS tests.

setup = make_platform()            # businessos, one live key, one RSA-2048 pair in the database
body = setup.lead(phone="+14155550123")   # a valid request body, phone encrypted + hashed
client.post(INGEST, body, content_type="application/json", **setup.headers())

Payouts: `make_payment(platform, amount="15.00")` (a user, lead and payment written with factory-boy),
`run()` (a payout run at NOW by ACTOR), `platform_report`, `snapshot`, `payout_emails`.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

import factory
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from factory.django import DjangoModelFactory

from audit.models import AuditEvent
from core.actors import Actor
from core.encryption import blind_index
from leads import crypto
from leads.models import CareosKeyPair, CareUser, Lead, PartnerPayment, PartnerPlatform, PartnerUser, PayoutBatch
from leads.services import payouts
from leads.services.ingest import PHONE_INDEX_PURPOSE
from leads.services.platforms import api_key_create, platform_create
from messaging.models import OutboundMessage

INGEST = "/api/leads/ingest"
ACTOR = Actor.system("tests")
NOW = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
PARTNER_EMAIL = "payouts@businessos.example"


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
    platform = platform_create(slug=slug, actor=ACTOR, **platform_fields)
    issued = api_key_create(platform=platform, environment="live", actor=ACTOR)
    pair = CareosKeyPair.objects.filter(fingerprint=rsa_pair(pair_index).fingerprint).first() or store_pair(
        rsa_pair(pair_index)
    )
    return PlatformSetup(platform=platform, api_key=issued.full_key, pair=pair)


# --- Payouts -----------------------------------------------------------------------------------------


class CareUserFactory(DjangoModelFactory):
    class Meta:
        model = CareUser

    phone = factory.Sequence(lambda n: f"+1415555{n % 10000:04d}")
    phone_index = factory.LazyAttribute(lambda user: blind_index(user.phone, purpose=PHONE_INDEX_PURPOSE))
    source = factory.LazyAttribute(lambda user: user.source_platform.user_source)


class PartnerUserFactory(DjangoModelFactory):
    class Meta:
        model = PartnerUser
        django_get_or_create = ("platform", "user")


class LeadFactory(DjangoModelFactory):
    class Meta:
        model = Lead

    source_conversation_id = factory.Sequence(lambda n: f"conv-{n}")
    user = factory.SubFactory(CareUserFactory, source_platform=factory.SelfAttribute("..platform"))
    partner_user = factory.SubFactory(
        PartnerUserFactory, platform=factory.SelfAttribute("..platform"), user=factory.SelfAttribute("..user")
    )
    is_new_user = True
    language = "en"
    source_category = "healthcare"
    category = "healthcare"
    original_message = "test lead"
    consent_timestamp = NOW - timedelta(days=40)
    lead_value = Decimal("15.00")


class PartnerPaymentFactory(DjangoModelFactory):
    class Meta:
        model = PartnerPayment

    lead = factory.SubFactory(
        LeadFactory, platform=factory.SelfAttribute("..platform"), lead_value=factory.SelfAttribute("..amount")
    )
    amount = Decimal("15.00")
    status = PartnerPayment.Status.PENDING
    due_at = NOW - timedelta(days=1)
    paid_at = factory.LazyAttribute(lambda payment: NOW - timedelta(days=1) if payment.status == "paid" else None)


def make_payment(
    platform, *, amount: str = "15.00", due_at: datetime | None = None, status: str = "pending", **fields
) -> PartnerPayment:
    """A lead (and its user) of `platform` with a payment, written directly with the ORM."""
    if due_at is not None:
        fields["due_at"] = due_at
    return PartnerPaymentFactory(platform=platform, amount=Decimal(amount), status=status, **fields)


def run(**kwargs) -> payouts.PayoutReport:
    """A payout run at NOW (or `now=`) by ACTOR."""
    return payouts.payouts_process(now=kwargs.pop("now", NOW), actor=ACTOR, **kwargs)


def platform_report(report: payouts.PayoutReport, slug: str) -> payouts.PlatformReport:
    [item] = [item for item in report.platforms if item.platform == slug]
    return item


def snapshot() -> dict:
    """Everything a payout run could write."""
    return {
        "payments": sorted(PartnerPayment.objects.values_list("pk", "status", "batch_id", "paid_at", "updated_at")),
        "batches": sorted(PayoutBatch.objects.values_list("pk", "status", "provider_reference", "error", "paid_at")),
        "audit": AuditEvent.objects.count(),
        "messages": OutboundMessage.objects.count(),
    }


def payout_emails():
    return OutboundMessage.objects.filter(purpose="careos.payout_paid")
