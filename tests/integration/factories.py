"""Builders for LoveRescue tests: therapists, clients, links, couples and a partner with a token.

therapist = make_therapist()
client = make_client("Jane", "Doe")
link(therapist, client, "STANDARD")               # consented at STANDARD
partner = make_partner(therapists=[therapist])    # BAA on file, one credential
headers = partner.headers(therapist)              # {"HTTP_AUTHORIZATION": "Bearer ..."}
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from accounts.models import User
from core.time import utc_now
from integration import tokens
from integration.models import Client, Couple, IntegrationPartner, PartnerCredential, Therapist, TherapistClientLink
from integration.services.partners import partner_create, partner_credential_create

_counter = iter(range(1, 10**9))


def make_therapist(first="Tess", last="Therapist", *, active=True, email="tess@example.com", phone="+14155550100"):
    return Therapist.objects.create(first_name=first, last_name=last, is_active=active, email=email, phone=phone)


def make_client(first="Jane", last="Doe", *, username=None, password="client-pass-123!", email=None):
    n = next(_counter)
    user = User.objects.create_user(username=username or f"client{n}", password=password)
    return Client.objects.create(user=user, first_name=first, last_name=last, email=email or f"client{n}@example.com")


def link(therapist, client, level="STANDARD", *, consent=True, revoked=False) -> TherapistClientLink:
    now = utc_now()
    return TherapistClientLink.objects.create(
        therapist=therapist,
        client=client,
        permission_level=level,
        consent_granted_at=now if consent else None,
        consent_revoked_at=now if revoked else None,
    )


def make_couple(partner1, partner2) -> Couple:
    return Couple.objects.create(partner1=partner1, partner2=partner2)


@dataclass
class TestPartner:
    partner: IntegrationPartner
    credential: PartnerCredential
    api_key: str
    api_secret: str

    def token(self, therapist) -> str:
        return tokens.issue_token(
            partner_id=self.partner.pk, credential_id=self.credential.pk, therapist_id=therapist.pk
        )

    def headers(self, therapist) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token(therapist)}"}


def make_partner(name=None, *, therapists=(), baa=True, allowed_ips=(), rate_limit=None) -> TestPartner:
    partner = partner_create(
        name=name or f"Partner {next(_counter)}",
        therapists=list(therapists),
        baa_signed_at=date(2026, 1, 1) if baa else None,
        baa_signer="Pat Partner" if baa else "",
        allowed_ips=list(allowed_ips),
        rate_limit_per_minute=rate_limit,
        actor_type="system",
        actor_id="tests",
    )
    issued = partner_credential_create(partner=partner, actor_type="system", actor_id="tests")
    return TestPartner(partner, issued.credential, issued.api_key, issued.api_secret)
