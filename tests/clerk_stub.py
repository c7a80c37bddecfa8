"""A Clerk-like identity provider on 127.0.0.1 for tests: serves its JWKS at `/.well-known/jwks.json` and
mints session tokens the way Clerk does (RS256, `kid` header, `azp`, `sid`, `nbf`, short lifetime), with
the active organization in version 1 claims (`org_id`, `org_role` "org:admin") or version 2 claims
(`v: 2`, `o: {"id", "rol": "admin", "slg"}`).

    with ClerkStub() as clerk:          # also points the OIDC_* settings at it, via `clerk.configure(settings)`
        token = clerk.token(org_id="org_2abc", org_role="org:admin")            # v1
        token = clerk.token(version=2, org_id="org_2abc", org_role="org:member")  # v2: o.rol "member"
        clerk.rotate()                                                          # a new key, old one kept
        clerk.rotate(keep_old=False)                                            # old one withdrawn

Only tests import this module.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.servers import LocalServer, Recorded, Reply

JWKS_PATH = "/.well-known/jwks.json"


def rsa_key(kid: str):
    """(private key, public JWK dict) of a fresh 2048-bit RSA key."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    public_jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return private, public_jwk


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class ClerkStub:
    def __init__(self, *, azp: str = "https://dashboard.example.test"):
        self.default_azp = azp
        self._lock = threading.Lock()
        self.keys: dict[str, tuple] = {}  # kid -> (private key, public JWK); all served
        self.current_kid = ""
        self.rotate()
        self.server = LocalServer(self._handle)

    # --- the server ---------------------------------------------------------------------------------

    def __enter__(self) -> ClerkStub:
        self.server.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.server.__exit__(*exc)

    @property
    def issuer(self) -> str:
        # Clerk's issuer is its Frontend API URL, which also serves the JWKS.
        return self.server.url("").rstrip("/")

    @property
    def jwks_url(self) -> str:
        return self.server.url(JWKS_PATH)

    @property
    def jwks_fetches(self) -> int:
        return sum(1 for request in self.server.requests if request.path == JWKS_PATH)

    def _handle(self, request: Recorded) -> Reply:
        if request.method != "GET" or request.path != JWKS_PATH:
            return Reply(404, {"Content-Type": "application/json"}, b'{"errors": [{"code": "not_found"}]}')
        with self._lock:
            body = json.dumps({"keys": [public for _private, public in self.keys.values()]})
        return Reply(200, {"Content-Type": "application/json"}, body)

    def configure(self, settings, *, audience: str = "", authorized_parties=None) -> None:
        """Point the OIDC settings (pytest-django's `settings` fixture) at this provider."""
        settings.OIDC_ISSUER = self.issuer
        settings.OIDC_JWKS_URL = self.jwks_url
        settings.OIDC_AUDIENCE = audience
        settings.OIDC_AUTHORIZED_PARTIES = [self.default_azp] if authorized_parties is None else authorized_parties

    # --- keys -----------------------------------------------------------------------------------------

    def rotate(self, *, keep_old: bool = True) -> str:
        """Sign with a new key from now on; the old keys stay in the JWKS unless `keep_old` is false."""
        kid = f"ins_{secrets.token_hex(8)}"
        pair = rsa_key(kid)
        with self._lock:
            if not keep_old:
                self.keys.clear()
            self.keys[kid] = pair
            self.current_kid = kid
        return kid

    def private_key(self, kid: str | None = None):
        return self.keys[kid or self.current_kid][0]

    def public_pem(self, kid: str | None = None) -> bytes:
        return (
            self.private_key(kid)
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )

    # --- tokens ---------------------------------------------------------------------------------------

    def claims(
        self,
        *,
        version: int = 2,
        sub: str = "user_2stubUser",
        org_id: str | None = None,
        org_role: str | None = None,
        azp: str | None = "",
        lifetime: int = 60,
        now: int | None = None,
        **extra,
    ) -> dict:
        """Clerk's default session claims. `org_role` is written Clerk's v1 way ("org:admin"); v2 tokens
        carry it without the prefix, as Clerk does. `azp=None` leaves the claim out. A claim given as
        `extra` with the value None is removed."""
        now = int(time.time()) if now is None else now
        claims = {
            "iss": self.issuer,
            "sub": sub,
            "sid": f"sess_{secrets.token_hex(8)}",
            "iat": now,
            "nbf": now - 5,
            "exp": now + lifetime,
        }
        if azp is not None:
            claims["azp"] = azp or self.default_azp
        if version == 1:
            if org_id:
                claims.update({"org_id": org_id, "org_role": org_role or "org:member", "org_slug": "clinic"})
        else:
            claims.update({"v": 2, "fva": [0, -1], "sts": "active"})
            if org_id:
                role = (org_role or "org:member").removeprefix("org:")
                claims["o"] = {"id": org_id, "rol": role, "slg": "clinic"}
        for name, value in extra.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def sign(self, claims: dict, *, kid: str | None = None, headers: dict | None = None) -> str:
        kid = kid or self.current_kid
        return jwt.encode(claims, self.keys[kid][0], algorithm="RS256", headers={"kid": kid, **(headers or {})})

    def token(self, *, kid: str | None = None, **claims) -> str:
        return self.sign(self.claims(**claims), kid=kid)

    # --- forgeries ------------------------------------------------------------------------------------

    def alg_none(self, **claims) -> str:
        header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": self.current_kid}).encode())
        body = _b64(json.dumps(self.claims(**claims)).encode())
        return (header + b"." + body + b".").decode()

    def hs256_with_public_key(self, **claims) -> str:
        """The algorithm-confusion forgery: HS256 with the provider's public key (PEM) as the secret."""
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": self.current_kid}).encode())
        body = _b64(json.dumps(self.claims(**claims)).encode())
        signature = _b64(hmac.new(self.public_pem(), header + b"." + body, hashlib.sha256).digest())
        return (header + b"." + body + b"." + signature).decode()

    def signed_by_stranger(self, **claims) -> str:
        """Signed by a key that is not in the JWKS, under the current kid (a key the provider never had)."""
        stranger, _ = rsa_key(self.current_kid)
        return jwt.encode(self.claims(**claims), stranger, algorithm="RS256", headers={"kid": self.current_kid})
