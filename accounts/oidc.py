"""Start-up checks of the identity settings: the OIDC provider (Clerk) and the browser origins allowed by
CORS (docs/identity.md). Pure functions of the environment's strings, imported by config/settings.py
before Django is set up, so a bad value stops the process at start-up with the setting's name (never its
value's secrets: these are URLs and origins)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

# The API paths a browser dashboard calls, and only those (django-cors-headers' CORS_URLS_REGEX):
# Routiq (core.apis.ROUTIQ.prefixes), the token endpoint dashboards sign in with, and the therapist
# dashboard (core.apis.THERAPIST.prefixes). tests/accounts/test_cors.py keeps this in step with core.apis.
CORS_PATH_PREFIXES = (
    "/api/v1/auth/verify",
    "/api/v1/auth/organization/",
    "/api/v1/patients/org_",
    "/api/v1/dashboard/",
    "/api/v1/sync/",
    "/api/v1/cliniko/",
    "/api/v1/admin/",
    "/api/session",
    "/api/evaluation",
)
CORS_EXACT_PATHS = ("/api/v1/auth/token",)


def cors_urls_regex() -> str:
    prefixes = "|".join(_escape(prefix) for prefix in CORS_PATH_PREFIXES)
    exact = "|".join(_escape(path) for path in CORS_EXACT_PATHS)
    return rf"^(?:(?:{prefixes})|(?:{exact})$)"


def _escape(path: str) -> str:
    # Paths are letters, digits, "/", "_" and "-": escape the rest anyway.
    return "".join(ch if ch.isalnum() or ch in "/_-" else f"\\{ch}" for ch in path)


def _origin(value: str, setting: str) -> str:
    """`scheme://host[:port]`, as browsers send Origin: no path, query, credentials or wildcard."""
    if "*" in value:
        raise ImproperlyConfigured(f"{setting} never takes a wildcard: list each origin (https://app.example.com).")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"{setting}: {value!r} is not an origin such as https://app.example.com.") from None
    if (
        parts.scheme not in {"https", "http"}
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.path not in {"", "/"}
        or parts.query
        or parts.fragment
    ):
        raise ImproperlyConfigured(f"{setting}: {value!r} is not an origin such as https://app.example.com.")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def _origins(values: list[str], setting: str) -> list[str]:
    origins: list[str] = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        origin = _origin(value, setting)
        if origin not in origins:
            origins.append(origin)
    return origins


def cors_allowed_origins(values: list[str]) -> list[str]:
    """CORS_ALLOWED_ORIGINS, normalised (lower-case host, no trailing slash); a wildcard stops start-up."""
    return _origins(values, "CORS_ALLOWED_ORIGINS")


def authorized_parties(values: list[str]) -> list[str]:
    """OIDC_AUTHORIZED_PARTIES: the origins Clerk writes in `azp`; a wildcard stops start-up."""
    return _origins(values, "OIDC_AUTHORIZED_PARTIES")


def jwks_url(configured: str, issuer: str) -> str:
    """OIDC_JWKS_URL, or the issuer's `/.well-known/jwks.json` (where Clerk serves it) when only the issuer
    is set."""
    if configured.strip():
        return configured.strip()
    return f"{issuer.strip().rstrip('/')}/.well-known/jwks.json" if issuer.strip() else ""


def oidc_problems(*, jwks: str, issuer: str, production: bool) -> list[str]:
    """What stops start-up in the OIDC settings (names and rules only)."""
    problems = []
    if jwks and not issuer:
        problems.append("OIDC_ISSUER is required with OIDC_JWKS_URL (tokens' `iss` is always checked)")
    for name, url in (("OIDC_JWKS_URL", jwks), ("OIDC_ISSUER", issuer)):
        if url and urlsplit(url).scheme not in ({"https"} if production else {"https", "http"}):
            problems.append(f"{name} must be an https URL" + ("" if production else " (or http outside production)"))
    return problems
