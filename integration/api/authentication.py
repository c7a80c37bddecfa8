"""Who is calling: an integration partner acting for one therapist (partner API), or a client of the
LoveRescue app (app API)."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework import authentication, permissions

from core.actors import Actor
from core.context import set_actor
from core.errors import ApiError
from core.net import client_ip
from core.ratelimit import genuine_credential
from integration import tokens
from integration.models import IntegrationPartner, PartnerCredential, Therapist
from integration.selectors.app import client_for_user
from integration.services.auth import acting_therapist, check_partner_access, invalid_key, token_credential


@dataclass(frozen=True)
class PartnerPrincipal:
    """`request.user` on the partner API: the partner, the credential it used, the therapist it acts for."""

    partner: IntegrationPartner
    credential: PartnerCredential
    therapist: Therapist
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_staff: bool = False
    pk = None  # not a platform user

    def __str__(self) -> str:
        return f"partner {self.partner.pk} for therapist {self.therapist.pk}"


class IntegrationTokenAuthentication(authentication.BaseAuthentication):
    """Bearer integration token. Everything that can change after the token was issued (credential
    revoked, partner suspended, BAA removed, allowlist changed, therapist deactivated or unassigned) is
    checked on every request: two indexed queries."""

    keyword = b"bearer"

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise ApiError(401, "Invalid authorization header", code="AUTH_FAILED")
        try:
            claims = tokens.decode_token(parts[1].decode("latin-1"))
        except tokens.TokenExpired:
            # Signed by us, only stale: not a failed guess (core.ratelimit counts the others).
            raise genuine_credential(ApiError(401, "Token expired", code="TOKEN_EXPIRED")) from None
        except tokens.TokenInvalid:
            raise ApiError(401, "Invalid token", code="AUTH_FAILED") from None
        credential = token_credential(credential_id=claims.credential_id, partner_id=claims.partner_id)
        if credential is None:
            raise invalid_key()
        partner = credential.partner
        http_request = request._request
        # Counted per API key, at the partner's own limit when it has one (spec section 4).
        http_request.ratelimit_principal = f"lr_int:{credential.key_id}"
        http_request.ratelimit_override = partner.rate_limit_per_minute
        # The token acts for one therapist: the access log names both (checked just below).
        set_actor(request, Actor.integration_partner(partner.pk), on_behalf_of=Actor.therapist(claims.therapist_id))
        check_partner_access(partner, client_ip(http_request))
        therapist = acting_therapist(partner, claims.therapist_id)
        return PartnerPrincipal(partner=partner, credential=credential, therapist=therapist), None

    def authenticate_header(self, request):
        return 'Bearer realm="loverescue"'


class IsPartner(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, PartnerPrincipal)


class IsLoveRescueClient(permissions.BasePermission):
    """A platform user who is a LoveRescue client (has a Client profile)."""

    message = "This account is not a LoveRescue app client"

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        client = client_for_user(user.pk)
        if client is None:
            return False
        request.lr_client = client
        set_actor(request, Actor.client(client.pk))
        return True
