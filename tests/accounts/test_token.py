"""POST /api/v1/auth/token as the Mark spec shows it."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-test-password-42"


@pytest.fixture
def user():
    return get_user_model().objects.create_user("clinic-api", password=PASSWORD)


def post_token(**body):
    return Client().post("/api/v1/auth/token", body, content_type="application/json")


def test_issues_a_one_hour_bearer_token(user):
    response = post_token(username="clinic-api", password=PASSWORD)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    token = AccessToken(body["access_token"])
    assert token["user_id"] == str(user.pk) or token["user_id"] == user.pk
    assert token["exp"] - token["iat"] == 3600


@pytest.mark.parametrize("username, password", [("clinic-api", "wrong"), ("nobody", PASSWORD)])
def test_bad_credentials_are_one_indistinguishable_401(user, username, password):
    response = post_token(username=username, password=password)
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "invalid_credentials", "message": "Invalid username or password", "details": None}
    }


def test_inactive_user_gets_no_token(user):
    user.is_active = False
    user.save()
    assert post_token(username="clinic-api", password=PASSWORD).status_code == 401


@pytest.mark.urls("tests.core.probe_urls")
def test_bearer_token_reaches_a_mark_view_and_expired_is_401(user):
    from datetime import timedelta

    token = post_token(username="clinic-api", password=PASSWORD).json()["access_token"]
    ok = Client().get("/api/v1/probe", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert ok.status_code == 200 and ok.json()["user"] == user.pk
    expired = AccessToken.for_user(user)
    expired.set_exp(lifetime=-timedelta(seconds=1))
    response = Client().get("/api/v1/probe", HTTP_AUTHORIZATION=f"Bearer {expired}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"
