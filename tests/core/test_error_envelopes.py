"""Every failure under an API's paths renders in that API's own error body."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = [pytest.mark.urls("tests.core.probe_urls"), pytest.mark.django_db]


def assert_loverescue(body, status, code):
    assert set(body) >= {"error", "code"}
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]


def assert_mark(body, status, code):
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code


def assert_careos(body, status, code):
    assert set(body) == {"error"}
    assert isinstance(body["error"], str) and body["error"]


def assert_therapist(body, status, code):
    assert set(body) == {"error", "code", "details"}
    assert body["code"] == code


def assert_routiq(body, status, code):
    assert {"error", "detail", "timestamp", "path"} <= set(body)
    assert body["timestamp"].endswith("Z")
    assert body["error"] == code


APIS = {
    "loverescue": ("/api/integration/", assert_loverescue,
                   {401: "AUTH_FAILED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
                    500: "INTERNAL_ERROR"}),
    "mark": ("/api/v1/", assert_mark,
             {401: "authentication_failed", 403: "permission_denied", 404: "not_found",
              405: "method_not_allowed", 500: "internal_error"}),
    "careos": ("/api/leads/", assert_careos, {401: "", 403: "", 404: "", 405: "", 500: ""}),
    "therapist": ("/api/session/", assert_therapist,
                  {401: "AUTHENTICATION_FAILED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                   405: "METHOD_NOT_ALLOWED", 500: "INTERNAL_ERROR"}),
    "routiq": ("/api/v1/dashboard/", assert_routiq,
               {401: "Authentication failed", 403: "Access denied", 404: "Not found", 405: "Method not allowed",
                500: "Internal server error"}),
}


@pytest.fixture(params=sorted(APIS))
def api(request):
    return APIS[request.param]


def _json(response):
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    return response.json()


def test_401_without_credentials(api):
    prefix, check, codes = api
    response = Client().get(f"{prefix}probe")
    assert response.status_code == 401
    assert "WWW-Authenticate" in response
    check(_json(response), 401, codes[401])


def test_401_with_garbage_token(api):
    prefix, check, codes = api
    response = Client().get(f"{prefix}probe", HTTP_AUTHORIZATION="Bearer not.a.token")
    assert response.status_code == 401
    body = _json(response)
    if prefix == "/api/v1/":
        assert body["error"]["code"] == "token_not_valid"


def test_403_authenticated_but_not_allowed(api):
    from rest_framework_simplejwt.tokens import AccessToken

    prefix, check, codes = api
    user = get_user_model().objects.create_user("not-staff", password="probe-password-1234")
    response = Client().get(f"{prefix}staff-only", HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    assert response.status_code == 403
    check(_json(response), 403, codes[403])


@pytest.mark.parametrize("debug", [False, True])
def test_404_unknown_path(api, settings, debug):
    settings.DEBUG = debug  # DEBUG would otherwise show Django's technical 404 page
    prefix, check, codes = api
    response = Client().get(f"{prefix}no/such/route")
    assert response.status_code == 404
    check(_json(response), 404, codes[404])


def test_405_wrong_method(api):
    prefix, check, codes = api
    user = get_user_model().objects.create_user("probe", password="probe-password-1234")
    client = Client()
    client.force_login(user)  # session auth is not enabled on APIs: 405 is decided before auth anyway
    response = client.delete(f"{prefix}probe")
    assert response.status_code in (405, 401)
    response = Client().generic("PATCH", f"{prefix}boom")
    assert response.status_code == 405
    check(_json(response), 405, codes[405])


@pytest.mark.parametrize("debug", [False, True])
def test_500_hides_internals(api, settings, debug, caplog):
    settings.DEBUG = debug
    prefix, check, codes = api
    response = Client(raise_request_exception=False).get(f"{prefix}boom")
    assert response.status_code == 500
    body = _json(response)
    check(body, 500, codes[500])
    text = response.content.decode()
    assert "secret internal detail" not in text
    assert "Traceback" not in text and "db.py" not in text
    assert any("Unhandled error" in r.getMessage() for r in caplog.records)


def test_415_in_envelope():
    response = Client().post("/api/v1/auth/token", data="username=a", content_type="text/plain")
    assert response.status_code == 415
    assert_mark(_json(response), 415, "unsupported_media_type")


def test_400_validation_names_fields():
    response = Client().post("/api/v1/auth/token", data={"username": "a"}, content_type="application/json")
    assert response.status_code == 400
    body = _json(response)["error"]
    assert body["code"] == "invalid_request"
    assert "password" in body["message"]
    assert "password" in body["details"]


def test_malformed_json_is_400_not_500():
    response = Client().post("/api/v1/auth/token", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert _json(response)["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    "path, owner",
    [
        ("/api/v1/patients/org_abc123/unknown", "routiq"),
        ("/api/v1/patients/pat_abc123/unknown", "mark"),
        ("/api/v1/auth/verify/extra", "routiq"),
        ("/api/v1/auth/organization/org_1/nope", "routiq"),
        ("/api/v1/auth/nope", "mark"),
        ("/api/v1/sync/nope", "routiq"),
        ("/api/v1/cliniko/nope", "routiq"),
        ("/api/v1/admin/nope", "routiq"),
        ("/api/v1/conversations/nope", "mark"),
        ("/api/evaluation/nope", "therapist"),
        ("/api/app/nope", "loverescue"),
    ],
)
def test_shared_prefix_unknown_paths_take_longest_prefix(path, owner):
    body = _json(Client().get(path))
    looks_like = {
        "routiq": lambda b: "detail" in b and "path" in b,
        "mark": lambda b: isinstance(b.get("error"), dict),
        "therapist": lambda b: set(b) == {"error", "code", "details"},
        "loverescue": lambda b: set(b) == {"error", "code"},
    }
    assert looks_like[owner](body), body


def test_non_api_paths_keep_django_pages():
    response = Client().get("/not-an-api/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_platform_paths_have_their_own_envelope():
    response = Client().get("/api/messaging/nope")
    assert response.status_code == 404
    assert _json(response) == {"error": "Not found", "code": "not_found"}
