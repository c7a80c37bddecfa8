"""Clerk session tokens end to end: a Clerk-like JWKS server on 127.0.0.1 (tests/clerk_stub.py), tokens
through a real Mark route (`GET /api/v1/patients`, read only), the active organization of v1 and v2
claims, `azp`, the optional audience, key rotation, and every forgery refused with the API's own 401."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.test import Client

from accounts import authentication
from accounts import services as accounts_services
from accounts.authentication import verify_oidc_token
from accounts.models import ExternalIdentity, Membership, Organization, User
from audit.models import AuditEvent
from core.actors import Actor
from core.errors import ApiError
from core.scoping import OIDCClaims
from patients import services as patient_services
from tests.clerk_stub import ClerkStub
from tests.servers import LocalServer, Reply
from tests.settings_process import PRODUCTION_ENV, ROOT

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("tests")
PATIENTS = "/api/v1/patients"
CLINIC_CLERK_ID = "org_2xwClinicClerk01"
OTHER_CLERK_ID = "org_2xwOtherClerk02"


@pytest.fixture
def clerk(settings, frozen_ratelimit_clock):
    authentication._jwks_clients.clear()
    with ClerkStub() as stub:
        stub.configure(settings)
        yield stub
    authentication._jwks_clients.clear()


@pytest.fixture
def clinic(db):
    organization = accounts_services.organization_create(
        name="Clinic", clerk_organization_id=CLINIC_CLERK_ID, actor=ACTOR
    )
    patient_services.patient_create(organization=organization, name="Ana", actor=ACTOR)
    return organization


@pytest.fixture
def other(db):
    organization = accounts_services.organization_create(
        name="Other clinic", clerk_organization_id=OTHER_CLERK_ID, actor=ACTOR
    )
    patient_services.patient_create(organization=organization, name="Otto", actor=ACTOR)
    return organization


def call(token: str, path: str = PATIENTS, *, method: str = "get", organization: str | None = None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}", **extra}
    if organization is not None:
        headers["HTTP_X_ORGANIZATION_ID"] = organization
    client = Client(raise_request_exception=False)
    if method == "post":
        return client.post(path, data={"name": "Nobody"}, content_type="application/json", **headers)
    return getattr(client, method)(path, **headers)


def patient_names(response) -> list[str]:
    assert response.status_code == 200, response.content[:400]
    return sorted(item["name"] for item in response.json()["data"])


def mark_error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:400]
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def user_of(sub: str) -> User:
    return ExternalIdentity.objects.select_related("user").get(subject=sub).user


def token_membership_events(organization) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(organization_id=organization.public_id, metadata__source="clerk_token").order_by("id")
    )


# --- The active organization: v1 and v2 claims ----------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(("clerk_role", "our_role"), [("org:admin", "admin"), ("org:member", "staff")])
def test_active_organization_grants_that_organization_with_the_mapped_role(
    clerk, clinic, other, version, clerk_role, our_role
):
    token = clerk.token(version=version, sub="user_2alice", org_id=CLINIC_CLERK_ID, org_role=clerk_role)
    # No X-Organization-ID: the token's active organization; only its patients.
    assert patient_names(call(token)) == ["Ana"]
    # Named by our public id or by the Clerk id: the same organization.
    assert patient_names(call(token, organization=clinic.public_id)) == ["Ana"]
    assert patient_names(call(token, organization=CLINIC_CLERK_ID)) == ["Ana"]
    alice = user_of("user_2alice")
    membership = Membership.objects.get(user=alice)
    assert (membership.organization_id, membership.role) == (clinic.pk, our_role)
    # Recorded once, with its audit event; the later requests found it as the token says and wrote nothing.
    events = token_membership_events(clinic)
    assert [(e.action, e.subject_id, e.metadata["role"]) for e in events] == [
        ("accounts.membership_set", str(alice.pk), our_role)
    ]
    assert events[0].actor_type == "system" and events[0].metadata["clerk_role"] == clerk_role.removeprefix(
        "org:" if version == 2 else ""
    )


def test_another_organization_than_the_active_one_is_403_even_for_a_member(clerk, clinic, other):
    token = clerk.token(sub="user_2alice", org_id=CLINIC_CLERK_ID, org_role="org:admin")
    call(token)  # provisions alice
    alice = user_of("user_2alice")
    accounts_services.membership_set(user=alice, organization=other, role="owner", actor=ACTOR)
    for named in (other.public_id, OTHER_CLERK_ID):
        error = mark_error(call(token, organization=named), 403)
        assert error["message"] == "The token's active organization is not this organization"
        assert "Otto" not in str(error)
    # An organization that does not exist is 404, as for any caller.
    assert mark_error(call(token, organization="org_doesNotExist"), 404)["code"] == "not_found"


def test_switching_the_active_organization_in_clerk_switches_the_organization(clerk, clinic, other):
    first = clerk.token(version=1, sub="user_2alice", org_id=CLINIC_CLERK_ID, org_role="org:admin")
    second = clerk.token(version=2, sub="user_2alice", org_id=OTHER_CLERK_ID, org_role="org:member")
    assert patient_names(call(first)) == ["Ana"]
    assert patient_names(call(second)) == ["Otto"]
    alice = user_of("user_2alice")
    roles = dict(Membership.objects.filter(user=alice).values_list("organization__public_id", "role"))
    assert roles == {clinic.public_id: "admin", other.public_id: "staff"}


def test_token_without_an_active_organization_reaches_no_organization(clerk, clinic):
    call(clerk.token(sub="user_2alice", org_id=CLINIC_CLERK_ID, org_role="org:admin"))
    assert Membership.objects.filter(user=user_of("user_2alice"), organization=clinic).exists()
    # The recorded membership does not let a token without an active organization in (Clerk decides).
    personal = clerk.token(sub="user_2alice")
    assert mark_error(call(personal), 403)["message"].startswith("The token has no active organization")
    assert mark_error(call(personal, organization=clinic.public_id), 403)["code"] == "permission_denied"


def test_active_organization_not_linked_here_is_403_and_records_nothing(clerk, clinic):
    token = clerk.token(sub="user_2alice", org_id="org_2xwNotLinkedHere", org_role="org:admin")
    error = mark_error(call(token), 403)
    assert error["message"] == "The token's active organization is not linked to an organization here"
    assert mark_error(call(token, organization=clinic.public_id), 403)["code"] == "permission_denied"
    assert not Membership.objects.exists()


def test_inactive_organization_is_not_reached_and_not_recorded(clerk, clinic):
    Organization.objects.filter(pk=clinic.pk).update(is_active=False)
    token = clerk.token(sub="user_2alice", org_id=CLINIC_CLERK_ID, org_role="org:admin")
    assert mark_error(call(token), 403)["code"] == "permission_denied"
    assert mark_error(call(token, organization=clinic.public_id), 404)["code"] == "not_found"
    assert not Membership.objects.exists()


def test_role_changed_in_clerk_follows_with_the_next_token(clerk, clinic, settings):
    settings.CLERK_ROLE_MAP = {"org:auditor": "viewer"}
    admin = clerk.token(version=1, sub="user_2alice", org_id=CLINIC_CLERK_ID, org_role="org:admin")
    assert patient_names(call(admin)) == ["Ana"]
    viewer = clerk.token(version=2, sub="user_2alice", org_id=CLINIC_CLERK_ID, org_role="org:auditor")
    assert patient_names(call(viewer)) == ["Ana"]  # viewers read
    assert mark_error(call(viewer, method="post"), 403)["code"] == "permission_denied"  # and do not write
    alice = user_of("user_2alice")
    assert Membership.objects.get(user=alice, organization=clinic).role == "viewer"
    events = token_membership_events(clinic)
    assert [(e.metadata["previous_role"], e.metadata["role"]) for e in events] == [(None, "admin"), ("admin", "viewer")]


def test_unmapped_clerk_role_grants_nothing_and_removes_the_recorded_membership(clerk, clinic):
    call(clerk.token(sub="user_2alice", org_id=CLINIC_CLERK_ID, org_role="org:admin"))
    alice = user_of("user_2alice")
    assert Membership.objects.filter(user=alice, organization=clinic).exists()
    billing = clerk.token(sub="user_2alice", org_id=CLINIC_CLERK_ID, org_role="org:billing")
    error = mark_error(call(billing), 403)
    assert error["message"] == "Your role in the token's active organization grants no access here"
    assert not Membership.objects.filter(user=alice, organization=clinic).exists()
    removed = token_membership_events(clinic)[-1]
    assert removed.action == "accounts.membership_removed"
    assert (removed.metadata["previous_role"], removed.metadata["role"]) == ("admin", None)


def test_token_role_wins_over_a_membership_set_by_hand(clerk, clinic):
    call(clerk.token(sub="user_2alice", org_id=CLINIC_CLERK_ID, org_role="org:member"))
    alice = user_of("user_2alice")
    accounts_services.membership_set(user=alice, organization=clinic, role="viewer", actor=ACTOR)
    # The member token still writes as staff would (the POST reaches validation, not the role check) and
    # puts the recorded role back to staff.
    response = call(clerk.token(sub="user_2alice", org_id=CLINIC_CLERK_ID, org_role="org:member"), method="post")
    assert response.status_code != 403, response.content[:300]
    assert Membership.objects.get(user=alice, organization=clinic).role == "staff"


# --- Verification: what is refused (401 in the API's own body) ------------------------------------------


def _refusals(clerk: ClerkStub) -> dict[str, str]:
    org = {"org_id": CLINIC_CLERK_ID, "org_role": "org:admin"}
    now = int(time.time())
    return {
        "expired": clerk.token(now=now - 600, **org),
        "wrong issuer": clerk.token(iss="https://clerk.elsewhere.test", **org),
        "unknown kid": clerk.sign(clerk.claims(**org), headers={"kid": "ins_unknown"}),
        "signed by another key": clerk.signed_by_stranger(**org),
        "alg none": clerk.alg_none(**org),
        "hs256 with the public key": clerk.hs256_with_public_key(**org),
        "no sub": clerk.token(sub=None, **org),
        "empty sub": clerk.token(sub="", **org),
        "no azp": clerk.token(azp=None, **org),
        "another azp": clerk.token(azp="https://evil.example", **org),
        "pending session": clerk.token(sts="pending", **org),
        "not yet valid": clerk.token(nbf=now + 600, **org),
        "issued in the future": clerk.token(iat=now + 600, nbf=None, **org),
        "no exp": clerk.token(exp=None, **org),
        "tampered payload": _tampered(clerk.token(**org)),
    }


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    return ".".join([header, payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB"), signature])


REFUSALS = [
    "expired",
    "wrong issuer",
    "unknown kid",
    "signed by another key",
    "alg none",
    "hs256 with the public key",
    "no sub",
    "empty sub",
    "no azp",
    "another azp",
    "pending session",
    "not yet valid",
    "issued in the future",
    "no exp",
    "tampered payload",
]


@pytest.mark.parametrize("case", REFUSALS)
def test_refused_tokens_are_401_in_the_apis_body_and_provision_nobody(clerk, clinic, case):
    token = _refusals(clerk)[case]
    error = mark_error(call(token), 401)
    assert set(error) == {"code", "message", "details"}
    expected = "token_expired" if case == "expired" else "token_not_valid"
    assert error["code"] == expected, error
    assert not ExternalIdentity.objects.exists()
    assert not Membership.objects.exists()


def test_the_valid_control_token_of_the_refusals_is_accepted(clerk, clinic):
    # The refusal cases differ from this token only in what they name: it must pass.
    assert patient_names(call(clerk.token(org_id=CLINIC_CLERK_ID, org_role="org:admin"))) == ["Ana"]


def test_refusal_in_routiqs_body(clerk):
    # The Routiq envelope (probe route: Routiq's own routes are issue 12's).
    from django.test import override_settings

    with override_settings(ROOT_URLCONF="tests.core.probe_urls"):
        response = call(clerk.alg_none(), "/api/v1/dashboard/oidc-probe")
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"error", "detail", "timestamp", "path"}
    assert body["error"] == "Authentication failed"


@pytest.mark.parametrize(("skew", "accepted"), [(2, True), (30, False)])
def test_expiry_has_a_small_leeway(clerk, clinic, skew, accepted):
    now = int(time.time())
    token = clerk.token(now=now - 60 - skew, lifetime=60, org_id=CLINIC_CLERK_ID, org_role="org:admin")
    assert call(token).status_code == (200 if accepted else 401)


def test_authorized_parties_unset_accepts_a_token_without_azp(clerk, clinic, settings):
    settings.OIDC_AUTHORIZED_PARTIES = []
    assert call(clerk.token(azp=None, org_id=CLINIC_CLERK_ID, org_role="org:admin")).status_code == 200
    settings.OIDC_AUTHORIZED_PARTIES = ["https://other.example", clerk.default_azp]
    assert call(clerk.token(org_id=CLINIC_CLERK_ID, org_role="org:admin")).status_code == 200
    assert call(clerk.token(azp=None, org_id=CLINIC_CLERK_ID, org_role="org:admin")).status_code == 401


def test_audience_is_checked_only_when_configured(clerk, clinic, settings):
    org = {"org_id": CLINIC_CLERK_ID, "org_role": "org:admin"}
    # Unset: Clerk's session tokens carry no aud, and a token that has one is not refused for it.
    assert call(clerk.token(**org)).status_code == 200
    assert call(clerk.token(aud="anything", **org)).status_code == 200
    settings.OIDC_AUDIENCE = "routiq-api"
    assert call(clerk.token(aud="routiq-api", **org)).status_code == 200
    assert call(clerk.token(aud=["other", "routiq-api"], **org)).status_code == 200
    assert mark_error(call(clerk.token(**org)), 401)["code"] == "token_not_valid"
    assert mark_error(call(clerk.token(aud="someone-else", **org)), 401)["code"] == "token_not_valid"


def test_unconfigured_issuer_refuses_every_external_token(clerk, clinic, settings):
    token = clerk.token(org_id=CLINIC_CLERK_ID, org_role="org:admin")
    settings.OIDC_ISSUER = ""
    assert mark_error(call(token), 401)["message"] == "External identity provider is not configured"
    assert clerk.jwks_fetches == 0


def test_verified_claims_are_marked_as_external(clerk):
    claims = verify_oidc_token(clerk.token(version=2, org_id=CLINIC_CLERK_ID, org_role="org:admin"))
    assert isinstance(claims, OIDCClaims)
    assert claims["o"] == {"id": CLINIC_CLERK_ID, "rol": "admin", "slg": "clinic"}
    with pytest.raises(ApiError) as refused:
        verify_oidc_token(clerk.alg_none())
    assert refused.value.status == 401


# --- Keys: cache, rotation, withdrawal, the guarded fetch -----------------------------------------------


def test_keys_are_fetched_once_and_a_rotated_key_is_fetched_on_first_sight(clerk, clinic, settings):
    settings.OIDC_JWKS_REFETCH_COOLDOWN_SECONDS = 0
    org = {"org_id": CLINIC_CLERK_ID, "org_role": "org:admin"}
    for _ in range(3):
        assert call(clerk.token(**org)).status_code == 200
    assert clerk.jwks_fetches == 1
    old_kid = clerk.current_kid
    clerk.rotate()
    assert call(clerk.token(**org)).status_code == 200  # new kid: one refetch
    assert call(clerk.token(kid=old_kid, **org)).status_code == 200  # old key still published
    assert clerk.jwks_fetches == 2


def test_a_withdrawn_key_stops_verifying_when_the_cached_set_expires(clerk, clinic, settings):
    settings.OIDC_JWKS_CACHE_SECONDS = 1
    org = {"org_id": CLINIC_CLERK_ID, "org_role": "org:admin"}
    old_kid = clerk.current_kid
    old_token = clerk.token(lifetime=120, **org)
    assert call(old_token).status_code == 200
    clerk.rotate(keep_old=False)
    time.sleep(1.2)
    assert mark_error(call(old_token), 401)["code"] == "token_not_valid"
    assert call(clerk.token(**org)).status_code == 200
    assert old_kid not in clerk.keys


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, {"Content-Type": "application/json"}, b'{"keys": [' + b'{"kty": "RSA"},' * 8000 + b"{}]}"),
        Reply(302, {"Location": "http://127.0.0.1:9/jwks.json"}, b""),
        Reply(200, {"Content-Type": "application/json"}, b'{"keys": [{"kty": "nonsense", "kid": "x"}]}'),
        Reply(200, {"Content-Type": "application/json"}, b"[1, 2, 3]"),
        Reply(200, {"Content-Type": "text/html"}, b"<html>not json</html>"),
        Reply(500, {}, b""),
    ],
    ids=["oversized", "redirect", "junk keys", "not an object", "not json", "server error"],
)
def test_a_bad_jwks_answer_is_401_never_500(clerk, clinic, settings, reply):
    token = clerk.token(org_id=CLINIC_CLERK_ID, org_role="org:admin")
    with LocalServer(lambda request: reply) as broken:
        settings.OIDC_JWKS_URL = broken.url("/.well-known/jwks.json")
        assert mark_error(call(token), 401)["code"] == "token_not_valid"
        assert len(broken.requests) == 1


# --- The service that records memberships ----------------------------------------------------------------


def test_membership_record_from_token_writes_only_changes(clinic):
    user = User.objects.create(username="u")

    def record(role, clerk_role="org:x", clerk_id=CLINIC_CLERK_ID):
        return accounts_services.membership_record_from_token(
            user=user, clerk_organization_id=clerk_id, role=role, clerk_role=clerk_role, actor=ACTOR
        )

    assert record("staff").role == "staff"
    assert record("staff").role == "staff"
    assert record("admin").role == "admin"
    assert record(None) is None
    assert record(None) is None
    actions = [e.action for e in token_membership_events(clinic)]
    assert actions == ["accounts.membership_set", "accounts.membership_set", "accounts.membership_removed"]
    # Unknown or malformed Clerk ids touch nothing.
    assert record("admin", clerk_id="org_2unknown") is None
    assert record("admin", clerk_id="org_bad\x00id") is None
    assert record("admin", clerk_id="") is None
    assert not Membership.objects.filter(user=user).exists()


# --- Start-up rules ------------------------------------------------------------------------------------------


def start_settings(env: dict, code: str = "from django.conf import settings; print(settings.DEBUG)"):
    """config.settings in a new interpreter with the production environment plus `env`."""
    names = set(PRODUCTION_ENV) | {"OUTBOUND_ALLOW_LOOPBACK", "DEBUG", "JWT_SIGNING_KEY"}
    environment = {k: v for k, v in os.environ.items() if k not in names and not k.startswith(("OIDC_", "CORS_"))}
    environment.update(PRODUCTION_ENV, DJANGO_SETTINGS_MODULE="config.settings", **env)
    script = f"import django; django.setup(); {code}"
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OIDC_AUTHORIZED_PARTIES": "*"}, "OIDC_AUTHORIZED_PARTIES never takes a wildcard"),
        ({"OIDC_ISSUER": "http://clerk.example.com"}, "OIDC_ISSUER must be an https URL"),
        (
            {"OIDC_ISSUER": "https://clerk.example.com", "OIDC_JWKS_URL": "http://clerk.example.com/jwks"},
            "OIDC_JWKS_URL must be an https URL",
        ),
        ({"OIDC_JWKS_URL": "https://clerk.example.com/jwks"}, "OIDC_ISSUER is required with OIDC_JWKS_URL"),
        ({"OIDC_LEEWAY_SECONDS": "600"}, "OIDC_LEEWAY_SECONDS must be between 0 and 60"),
    ],
)
def test_production_refuses_unsafe_oidc_settings(env, message):
    result = start_settings(env)
    assert result.returncode != 0
    assert message in result.stderr


def test_jwks_url_defaults_to_the_issuers_well_known_path():
    result = start_settings(
        {"OIDC_ISSUER": "https://clerk.example.com/", "OIDC_AUTHORIZED_PARTIES": "https://app.example.com/"},
        code="from django.conf import settings as s; print(s.OIDC_JWKS_URL, s.OIDC_AUTHORIZED_PARTIES)",
    )
    assert result.returncode == 0, result.stderr
    assert "https://clerk.example.com/.well-known/jwks.json ['https://app.example.com']" in result.stdout


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_first_record_of_the_same_membership_is_brought_to_the_tokens_role(require_postgres, clinic):
    """Two first requests of one user at once: the second's insert waits for the first's row, hits the
    unique constraint, and brings that row to its own token's role instead of failing (a 500)."""
    import threading

    from django.db import connection, transaction

    user = User.objects.create(username="racer")
    outcome = {}

    def second_request():
        try:
            outcome["membership"] = accounts_services.membership_record_from_token(
                user=user, clerk_organization_id=CLINIC_CLERK_ID, role="admin", clerk_role="org:admin", actor=ACTOR
            )
        except Exception as exc:  # noqa: BLE001 - the assertion below reports it
            outcome["error"] = exc
        finally:
            connection.close()

    with transaction.atomic():
        # The first request's row exists but is not committed: the second cannot see it and inserts too.
        Membership.objects.create(user=user, organization=clinic, role="staff")
        thread = threading.Thread(target=second_request)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive(), "the second insert should wait for the first transaction"
    thread.join(timeout=10)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["membership"].role == "admin"
    assert list(Membership.objects.filter(user=user).values_list("role", flat=True)) == ["admin"]
    event = token_membership_events(clinic)[-1]
    assert (event.action, event.metadata["previous_role"], event.metadata["role"]) == (
        "accounts.membership_set",
        "staff",
        "admin",
    )


def test_a_repeated_token_writes_nothing_and_locks_nothing(clerk, clinic):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    assert call(clerk.token(sub="user_2alice", org_id=CLINIC_CLERK_ID, org_role="org:admin")).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert call(clerk.token(sub="user_2alice", org_id=CLINIC_CLERK_ID, org_role="org:admin")).status_code == 200
    statements = [query["sql"].upper() for query in queries.captured_queries]
    writes = [sql for sql in statements if sql.startswith(("INSERT", "UPDATE", "DELETE"))]
    assert writes == [next(sql for sql in statements if "AUDIT_ACCESSLOG" in sql)]  # only the access row
    assert not [sql for sql in statements if "FOR UPDATE" in sql]
    reads = [sql for sql in statements if sql.startswith("SELECT")]
    assert len(reads) <= 6, reads  # identity, organization, membership, scope, then the page and its count
