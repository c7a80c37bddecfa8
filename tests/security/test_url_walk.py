"""Walk every URL pattern: a route must be declared public or refuse an anonymous caller.

This grows with every API: a new endpoint that forgets its permission classes fails here.
"""

import pytest
from django.test import Client

from tests.security.routes import ROUTES, methods

pytestmark = pytest.mark.django_db

# Non-DRF routes that are public by nature. Everything else must answer 401/403, or (admin) redirect
# to the admin login.
PUBLIC_NAMES = {
    "admin:login", "admin:logout", "admin:jsi18n", "admin:password_reset", "admin:view_on_site",
    "favicon",  # a redirect to the static icon: browsers ask for /favicon.ico on every page
}
REFUSALS = {401, 403}


def test_routes_were_found():
    paths = {path for path, _name, _cb in ROUTES}
    assert "health" in paths and "api/v1/auth/token" in paths
    assert any(p.startswith("admin/") for p in paths)


@pytest.mark.parametrize("route, name, callback", ROUTES, ids=[r[0] or "/" for r in ROUTES])
def test_route_is_public_or_refuses_anonymous(route, name, callback):
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if getattr(view_class, "public", False) or name in PUBLIC_NAMES:
        return
    client = Client(raise_request_exception=False)
    for method in methods(callback):
        response = getattr(client, method)(f"/{route}", content_type="application/json")
        if route.startswith("admin/") or route.startswith("ops/"):
            assert response.status_code == 302 and "/admin/login/" in response["Location"], (
                method, route, response.status_code)
        else:
            assert response.status_code in REFUSALS, (method, route, response.status_code)


def test_public_routes_are_few_and_known():
    public = sorted(
        path for path, _name, callback in ROUTES
        if getattr(getattr(callback, "cls", None), "public", False)
    )
    # Adding a public API route is a security decision: extend this list deliberately.
    # api/messaging/twilio/status and .../inbound (patients' WhatsApp messages) authenticate by
    # X-Twilio-Signature, not by a platform credential;
    # api/integration/auth is LoveRescue's token exchange (API key + secret in the body);
    # api/v1/messages/<id>/audio serves a voice note to whoever holds its signed, expiring URL (the
    # signature is the credential: Twilio fetches outbound voice notes with it).
    assert public == [
        "",
        "api/integration/auth",
        "api/messaging/twilio/inbound",
        "api/messaging/twilio/status",
        "api/schema/",
        "api/v1/auth/token",
        "api/v1/messages/msg_Sample123/audio",
        "docs",
        "health",
        "redoc",
    ]
