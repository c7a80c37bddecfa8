"""factory-boy factories for LoveRescue tests, and the helper functions other tests import.

therapist = make_therapist()                      # or TherapistFactory()
client = make_client("Jane", "Doe")               # or ClientFactory(first_name="Jane")
link(therapist, client, "STANDARD")               # consented at STANDARD (LinkFactory)
partner = make_partner(therapists=[therapist])    # BAA on file, one credential (PartnerFactory)
headers = partner.headers(therapist)              # {"HTTP_AUTHORIZATION": "Bearer ..."}

Partners are made through integration.services.partners (as staff would), so their keys are real and
their creation audited; people and links are plain rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import factory
from factory.django import DjangoModelFactory

from accounts.models import User
from core.actors import Actor
from core.time import utc_now
from integration import tokens
from integration.models import Client, Couple, IntegrationPartner, PartnerCredential, Therapist, TherapistClientLink
from integration.services.partners import partner_create, partner_credential_create

CLIENT_PASSWORD = "client-pass-123!"
TESTS_ACTOR = Actor.system("tests")


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"client{n}")
    password = CLIENT_PASSWORD

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return model_class.objects.create_user(*args, **kwargs)  # hashes the password


class TherapistFactory(DjangoModelFactory):
    class Meta:
        model = Therapist

    first_name = "Tess"
    last_name = "Therapist"
    is_active = True
    email = "tess@example.com"
    phone = "+14155550100"


class ClientFactory(DjangoModelFactory):
    class Meta:
        model = Client

    class Params:
        username = None
        password = CLIENT_PASSWORD

    user = factory.LazyAttribute(
        lambda o: UserFactory(password=o.password, **({"username": o.username} if o.username else {}))
    )
    first_name = "Jane"
    last_name = "Doe"
    email = factory.Sequence(lambda n: f"client{n}@example.com")


class LinkFactory(DjangoModelFactory):
    """A therapist link consented now; `pending=True` (no consent yet) or `revoked=True`."""

    class Meta:
        model = TherapistClientLink

    class Params:
        pending = factory.Trait(consent_granted_at=None)
        revoked = factory.Trait(consent_revoked_at=factory.LazyFunction(utc_now))

    therapist = factory.SubFactory(TherapistFactory)
    client = factory.SubFactory(ClientFactory)
    permission_level = "STANDARD"
    consent_granted_at = factory.LazyFunction(utc_now)
    consent_revoked_at = None


class CoupleFactory(DjangoModelFactory):
    class Meta:
        model = Couple

    partner1 = factory.SubFactory(ClientFactory)
    partner2 = factory.SubFactory(ClientFactory, first_name="John")


@dataclass
class TestPartner:
    """A partner with one credential, its API key and secret (shown once in real life, kept here)."""

    __test__ = False  # not a test class

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


class PartnerFactory(factory.Factory):
    """A TestPartner created through the partner services (audited, real bcrypt-hashed credential)."""

    class Meta:
        model = TestPartner

    name = factory.Sequence(lambda n: f"Partner {n}")
    therapists = ()
    baa = True
    allowed_ips = ()
    rate_limit = None

    @classmethod
    def _create(cls, model_class, *, name, therapists, baa, allowed_ips, rate_limit):
        partner = partner_create(
            name=name,
            therapists=list(therapists),
            baa_signed_at=date(2026, 1, 1) if baa else None,
            baa_signer="Pat Partner" if baa else "",
            allowed_ips=list(allowed_ips),
            rate_limit_per_minute=rate_limit,
            actor=TESTS_ACTOR,
        )
        issued = partner_credential_create(partner=partner, actor=TESTS_ACTOR)
        return model_class(partner, issued.credential, issued.api_key, issued.api_secret)

    _build = _create  # a partner only exists with its credential


# --- The helpers other tests import (same names and signatures as before the factories) ---------------


def make_therapist(first="Tess", last="Therapist", *, active=True, email="tess@example.com", phone="+14155550100"):
    return TherapistFactory(first_name=first, last_name=last, is_active=active, email=email, phone=phone)


def make_client(first="Jane", last="Doe", *, username=None, password=CLIENT_PASSWORD, email=None):
    extra = {"email": email} if email else {}
    return ClientFactory(first_name=first, last_name=last, username=username, password=password, **extra)


def link(therapist, client, level="STANDARD", *, consent=True, revoked=False) -> TherapistClientLink:
    now = utc_now()
    return LinkFactory(
        therapist=therapist,
        client=client,
        permission_level=level,
        consent_granted_at=now if consent else None,
        consent_revoked_at=now if revoked else None,
    )


def make_couple(partner1, partner2) -> Couple:
    return CoupleFactory(partner1=partner1, partner2=partner2)


def make_partner(name=None, *, therapists=(), baa=True, allowed_ips=(), rate_limit=None) -> TestPartner:
    extra = {"name": name} if name else {}
    return PartnerFactory(therapists=therapists, baa=baa, allowed_ips=allowed_ips, rate_limit=rate_limit, **extra)
