"""Issue 10, finding 7: API answers (protected data, both token endpoints, the webhook secret) must not be
kept by browsers, proxies or CDNs: `Cache-Control: no-store` on every response under an API's paths,
success or error, unless the view sets its own policy. Pages outside the APIs keep theirs."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def user():
    return get_user_model().objects.create_user(username="cachey", password="correct-horse-battery-9")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/auth/token", {"username": "cachey", "password": "correct-horse-battery-9"}),
        ("post", "/api/v1/auth/token", {"username": "cachey", "password": "wrong"}),
        ("post", "/api/integration/auth", {"apiKey": "lr_int_x", "apiSecret": "sk_live_x", "therapistId": "t"}),
        ("get", "/api/integration/clients", None),
        ("post", "/api/integration/webhook/register", {"url": "https://example.com/hook", "events": []}),
        ("post", "/api/leads/ingest", {}),
        ("get", "/api/app/checkins", None),
        ("get", "/api/v1/no-such-route", None),
    ],
)
def test_every_api_answer_is_no_store(user, method, path, body):
    client = Client()
    if body is None:
        response = getattr(client, method)(path)
    else:
        response = getattr(client, method)(path, data=body, content_type="application/json")
    assert response["Cache-Control"] == "no-store", (path, response.status_code)


def test_a_successful_token_answer_is_no_store(user):
    response = Client().post(
        "/api/v1/auth/token",
        data={"username": "cachey", "password": "correct-horse-battery-9"},
        content_type="application/json",
    )
    assert response.status_code == 200 and "access_token" in response.json()
    assert response["Cache-Control"] == "no-store"


def test_a_view_that_sets_its_own_policy_keeps_it():
    from django.http import JsonResponse
    from django.test import RequestFactory

    from core.middleware import ApiErrorMiddleware

    def view(request):
        response = JsonResponse({"ok": True})
        response["Cache-Control"] = "private, max-age=60"
        return response

    assert ApiErrorMiddleware(view)(RequestFactory().get("/api/leads/x"))["Cache-Control"] == "private, max-age=60"
    plain = ApiErrorMiddleware(lambda request: JsonResponse({"ok": True}))
    assert plain(RequestFactory().get("/api/leads/x"))["Cache-Control"] == "no-store"
    assert "Cache-Control" not in plain(RequestFactory().get("/not-an-api"))
