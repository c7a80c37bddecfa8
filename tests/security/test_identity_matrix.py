"""Every API route x every identity that must not get in: each is refused in the route's own API error
body, with nothing of the resource in it.

The identity classes are the review's: anonymous, malformed, expired, wrong signature, `alg: none`,
another API's credential (a LoveRescue partner token, a CareOS key, the platform token of a user who
is not the route's kind of caller), a revoked credential and a staff session cookie. Object-level cases
(another therapist's client, each consent level) are tests/integration/test_consent_matrix.py.

ROUTE_CREDENTIAL names how every non-public API route authenticates: a route added without an entry
fails `test_every_api_route_is_in_the_matrix`, so the matrix grows with the APIs.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.test import Client

from core.apis import family_for_path
from core.time import utc_now
from integration import tokens
from integration.services.partners import partner_credential_revoke
from tests.integration.factories import TESTS_ACTOR, make_client, make_partner, make_therapist
from tests.leads.factories import make_platform
from tests.security.routes import ROUTES, methods

pytestmark = pytest.mark.django_db

# How each non-public API route authenticates.
PARTNER, APP_CLIENT, CAREOS = "partner token", "platform token of a LoveRescue client", "CareOS API key"
MARK_MEMBER = "platform token of a member of the clinic"
# Routiq: organization-path routes are probed on an organization that exists (the world's clinic), so a
# caller who does not belong to it gets the 403 that tells it nothing (an unknown organization is a 404).
ROUTIQ_MEMBER = "token of a member of the organization (Routiq)"
ROUTIQ_PROBED_ORGANIZATION = "org_Sample123"  # tests/security/routes.py's sample org_ id
# Routiq's admin tier (/api/v1/admin/...): a staff user's platform token is a legitimate caller there.
ROUTIQ_ADMIN = "staff platform token, or token of an owner/admin (Routiq admin tier)"
# Therapist dashboard: a member of the organization with a dashboard role (therapist, supervisor, owner, admin).
THERAPIST_MEMBER = "platform token of a therapist-dashboard member"
ROUTE_CREDENTIAL = {
    "lr-alerts": PARTNER,
    "lr-alert-read": PARTNER,
    "lr-clients": PARTNER,
    "lr-client-progress": PARTNER,
    "lr-client-session-prep": PARTNER,
    "lr-client-assign": PARTNER,
    "lr-couple-dynamics": PARTNER,
    "lr-outcomes": PARTNER,
    "lr-webhook-register": PARTNER,
    "lr-app-activities": APP_CLIENT,
    "lr-app-assessments": APP_CLIENT,
    "lr-app-checkins": APP_CLIENT,
    "lr-app-journal": APP_CLIENT,
    "lr-app-ratios": APP_CLIENT,
    "lr-app-tasks": APP_CLIENT,
    "lr-app-task-complete": APP_CLIENT,
    "lr-app-links": APP_CLIENT,
    "lr-app-link": APP_CLIENT,
    "careos-leads-ingest": CAREOS,
    "mark-patients": MARK_MEMBER,
    "mark-patient": MARK_MEMBER,
    "mark-appointments": MARK_MEMBER,
    "mark-appointment": MARK_MEMBER,
    "mark-appointment-cancel": MARK_MEMBER,
    "mark-system-status": MARK_MEMBER,
    "mark-encryption-status": MARK_MEMBER,
    "mark-webhooks": MARK_MEMBER,
    "mark-webhook": MARK_MEMBER,
    "mark-conversations": MARK_MEMBER,
    "mark-conversation": MARK_MEMBER,
    "mark-conversation-export": MARK_MEMBER,
    "mark-messages": MARK_MEMBER,
    "mark-messages-voice": MARK_MEMBER,
    "mark-message": MARK_MEMBER,
    "mark-analytics-conversations": MARK_MEMBER,
    "mark-analytics-appointments": MARK_MEMBER,
    "mark-analytics-patients": MARK_MEMBER,
    "routiq-auth-verify": ROUTIQ_MEMBER,
    "routiq-auth-organization-access": ROUTIQ_MEMBER,
    "routiq-patients": ROUTIQ_MEMBER,
    "routiq-patients-active-summary": ROUTIQ_MEMBER,
    "routiq-patients-with-appointments": ROUTIQ_MEMBER,
    "routiq-patients-by-appointment-type": ROUTIQ_MEMBER,
    "routiq-patients-appointment-types-summary": ROUTIQ_MEMBER,
    "routiq-dashboard": ROUTIQ_MEMBER,
    "routiq-dashboard-summary": ROUTIQ_MEMBER,
    "routiq-dashboard-activity": ROUTIQ_MEMBER,
    "routiq-sync-trigger": ROUTIQ_MEMBER,
    "routiq-sync-scheduler-status": ROUTIQ_MEMBER,
    "routiq-sync-scheduler-trigger": ROUTIQ_MEMBER,
    "routiq-sync-progress": ROUTIQ_MEMBER,
    "routiq-sync-history": ROUTIQ_MEMBER,
    "routiq-cliniko-sync": ROUTIQ_MEMBER,
    "routiq-cliniko-status": ROUTIQ_MEMBER,
    "routiq-cliniko-test-connection": ROUTIQ_MEMBER,
    "routiq-cliniko-import-patients": ROUTIQ_MEMBER,
    "routiq-cliniko-debug": ROUTIQ_MEMBER,
    "routiq-admin-system-health": ROUTIQ_ADMIN,
    "routiq-admin-database-cleanup": ROUTIQ_ADMIN,
    "td-sessions": THERAPIST_MEMBER,
    "td-session": THERAPIST_MEMBER,
    "td-progress": THERAPIST_MEMBER,
    "td-snapshots": THERAPIST_MEMBER,
    "td-skills": THERAPIST_MEMBER,
    "td-analytics": THERAPIST_MEMBER,
    "td-comparison": THERAPIST_MEMBER,
    "td-evaluation": THERAPIST_MEMBER,
}


def _is_public(callback) -> bool:
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    return bool(getattr(view_class, "public", False))


API_ROUTES = [
    (path, name, callback)
    for path, name, callback in ROUTES
    if family_for_path(f"/{path}") is not None and not _is_public(callback)
]


def test_every_api_route_is_in_the_matrix():
    names = {name for _path, name, _callback in API_ROUTES}
    assert names, "no API routes found"
    missing = sorted(names - ROUTE_CREDENTIAL.keys())
    assert not missing, f"API routes without an identity-matrix entry (add them to ROUTE_CREDENTIAL): {missing}"
    assert not ROUTE_CREDENTIAL.keys() - names, "entries for routes that no longer exist"
    # A new kind of credential brings its identity classes (IDENTITY_NAMES and identities()).
    assert set(ROUTE_CREDENTIAL.values()) <= IDENTITY_NAMES.keys()


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _alg_none(claims: dict) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def _partner_claims(partner, therapist, *, now=None) -> dict:
    token = partner.token(therapist) if now is None else tokens.issue_token(
        partner_id=partner.partner.pk, credential_id=partner.credential.pk, therapist_id=therapist.pk, now=now
    )
    return jwt.decode(token, options={"verify_signature": False})


def _platform_claims(user, *, expired=False) -> dict:
    now = utc_now() - (timedelta(days=2) if expired else timedelta())
    return {
        "token_type": "access",
        "user_id": str(user.pk) if not isinstance(user.pk, int) else user.pk,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=15)).timestamp()),
        "jti": "matrix",
    }


def _bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.fixture
def world():
    therapist = make_therapist()
    other_therapist = make_therapist("Otto", "Other", email="otto@example.com", phone="+14155550101")
    partner = make_partner(therapists=[therapist])
    revoked = make_partner(therapists=[therapist])
    partner_credential_revoke(credential=revoked.credential, actor=TESTS_ACTOR)
    client_user = make_client(username="matrix-client").user
    careos = make_platform("matrixos")
    from accounts.models import User

    staff = User.objects.create_user(username="matrix-staff", password="x", is_staff=True, is_superuser=True)
    # Mark: a clinic member (whose token is expired or forged below) and a user who belongs to no clinic.
    from accounts.services import membership_set, organization_create

    clinic = organization_create(name="Matrix clinic", actor=TESTS_ACTOR)
    member = User.objects.create_user(username="matrix-member", password="x")
    membership_set(user=member, organization=clinic, role="owner", actor=TESTS_ACTOR)
    no_clinic = User.objects.create_user(username="matrix-no-clinic", password="x")
    # Therapist dashboard: a clinic member whose role (staff) is not a dashboard role.
    clinic_staff = User.objects.create_user(username="matrix-clinic-staff", password="x")
    membership_set(user=clinic_staff, organization=clinic, role="staff", actor=TESTS_ACTOR)
    return {
        "therapist": therapist,
        "other_therapist": other_therapist,
        "partner": partner,
        "revoked": revoked,
        "client_user": client_user,
        "careos": careos,
        "staff": staff,
        "member": member,
        "no_clinic": no_clinic,
        "clinic_staff": clinic_staff,
        "clinic": clinic,
    }


def _jwt_forgeries(claims: dict) -> dict[str, dict]:
    return {
        "wrong signature": _bearer(jwt.encode(claims, "not-the-signing-key-" * 3, algorithm="HS256")),
        "alg none": _bearer(_alg_none(claims)),
    }


def identities(kind: str, w) -> dict[str, dict]:
    """Every identity that must be refused on a route authenticated by `kind` (request headers)."""
    partner, therapist = w["partner"], w["therapist"]
    partner_token = _bearer(partner.token(therapist))
    from rest_framework_simplejwt.tokens import AccessToken

    client_platform_token = _bearer(str(AccessToken.for_user(w["client_user"])))
    staff_platform_token = _bearer(str(AccessToken.for_user(w["staff"])))
    careos_key = w["careos"].headers()
    common = {
        "anonymous": {},
        "malformed bearer": {"HTTP_AUTHORIZATION": "Bearer not.a.token"},
        "malformed scheme": {"HTTP_AUTHORIZATION": "Basic Zm9vOmJhcg=="},
    }
    if kind == PARTNER:
        claims = _partner_claims(partner, therapist)
        return {
            **common,
            "expired": _bearer(
                tokens.issue_token(
                    partner_id=partner.partner.pk,
                    credential_id=partner.credential.pk,
                    therapist_id=therapist.pk,
                    now=utc_now() - timedelta(days=2),
                )
            ),
            **_jwt_forgeries(claims),
            "revoked credential": w["revoked"].headers(therapist),
            "therapist not assigned to the partner": partner.headers(w["other_therapist"]),
            "platform token of a client": client_platform_token,
            "platform token of staff": staff_platform_token,
            "CareOS API key": careos_key,
        }
    if kind == APP_CLIENT:
        claims = _platform_claims(w["client_user"])
        expired = jwt.encode(
            _platform_claims(w["client_user"], expired=True), settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256"
        )
        return {
            **common,
            "expired": _bearer(expired),
            **_jwt_forgeries(claims),
            "platform token of a non-client (staff)": staff_platform_token,
            "LoveRescue partner token": partner_token,
            "CareOS API key": careos_key,
        }
    if kind == CAREOS:
        return {
            **common,
            "malformed key": w["careos"].headers(api_key="not-a-key"),
            "key of another platform's slug": w["careos"].headers(platform="someone-else"),
            "LoveRescue partner token": partner_token,
            "platform token of a client": client_platform_token,
            "platform token of staff": staff_platform_token,
        }
    if kind in (MARK_MEMBER, ROUTIQ_MEMBER, ROUTIQ_ADMIN, THERAPIST_MEMBER):
        # Forged and expired tokens claim the clinic's owner: a caller every one of these routes admits.
        claims = _platform_claims(w["member"])
        expired = jwt.encode(
            _platform_claims(w["member"], expired=True), settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256"
        )
        return {
            **common,
            "expired": _bearer(expired),
            **_jwt_forgeries(claims),
            "platform token of a user in no clinic": _bearer(str(AccessToken.for_user(w["no_clinic"]))),
            "platform token of a clinic member with no dashboard role (staff)": _bearer(
                str(AccessToken.for_user(w["clinic_staff"]))
            ),
            "platform token of a LoveRescue client": client_platform_token,
            "platform token of staff": staff_platform_token,
            "LoveRescue partner token": partner_token,
            "CareOS API key": careos_key,
        }
    raise AssertionError(kind)


IDENTITY_NAMES = {
    PARTNER: [
        "anonymous", "malformed bearer", "malformed scheme", "expired", "wrong signature", "alg none",
        "revoked credential", "therapist not assigned to the partner", "platform token of a client",
        "platform token of staff", "CareOS API key", "staff session cookie",
    ],
    APP_CLIENT: [
        "anonymous", "malformed bearer", "malformed scheme", "expired", "wrong signature", "alg none",
        "platform token of a non-client (staff)", "LoveRescue partner token", "CareOS API key",
        "staff session cookie",
    ],
    CAREOS: [
        "anonymous", "malformed bearer", "malformed scheme", "malformed key", "key of another platform's slug",
        "LoveRescue partner token", "platform token of a client", "platform token of staff",
        "staff session cookie",
    ],
    MARK_MEMBER: [
        "anonymous", "malformed bearer", "malformed scheme", "expired", "wrong signature", "alg none",
        "platform token of a user in no clinic", "platform token of a LoveRescue client",
        "platform token of staff", "LoveRescue partner token", "CareOS API key", "staff session cookie",
    ],
}  # fmt: skip
IDENTITY_NAMES[ROUTIQ_MEMBER] = IDENTITY_NAMES[MARK_MEMBER]
IDENTITY_NAMES[ROUTIQ_ADMIN] = [name for name in IDENTITY_NAMES[MARK_MEMBER] if name != "platform token of staff"]
IDENTITY_NAMES[THERAPIST_MEMBER] = [
    *IDENTITY_NAMES[MARK_MEMBER],
    "platform token of a clinic member with no dashboard role (staff)",
]

# A token for a therapist the partner no longer acts for was signed by us; the spec answers it as an
# unknown therapist (404), which tells the partner nothing it did not know.
REFUSED = {"therapist not assigned to the partner": (403, 404)}

CASES = [
    pytest.param(path, name, callback, identity, id=f"{name}-{identity}")
    for path, name, callback in API_ROUTES
    for identity in IDENTITY_NAMES.get(ROUTE_CREDENTIAL.get(name), ())
]


def _body_keys_of(family) -> set[str]:
    return {
        "loverescue": {"error", "code"},
        "careos": {"error"},
        "mark": {"error"},
        "routiq": {"error", "detail", "timestamp", "path"},
        "therapist": {"error", "code", "details"},
    }[family.name]


@pytest.mark.parametrize("path, name, callback, identity", CASES)
def test_identity_is_refused_on_route(world, path, name, callback, identity):
    kind = ROUTE_CREDENTIAL[name]
    http = Client(raise_request_exception=False)
    if identity == "staff session cookie":
        http.force_login(world["staff"])
        headers = {}
    else:
        headers = identities(kind, world)[identity]
    if kind == ROUTIQ_MEMBER:
        path = path.replace(ROUTIQ_PROBED_ORGANIZATION, world["clinic"].public_id)
    family = family_for_path(f"/{path}")
    for method in methods(callback):
        response = getattr(http, method)(f"/{path}", data={}, content_type="application/json", **headers)
        where = (method.upper(), path, identity, response.status_code, response.content[:200])
        assert response.status_code in REFUSED.get(identity, (401, 403)), where
        body = response.json()
        assert _body_keys_of(family) <= body.keys(), where
        assert response["Cache-Control"] == "no-store", where
        # Nothing of a resource: only the error body's own keys.
        assert set(body) <= {"error", "code", "details", "retryAfter", "detail", "timestamp", "path"}, where
