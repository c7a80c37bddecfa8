import re
import secrets

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_health_is_the_routiq_shape():
    body = Client().get("/health").json()
    assert set(body) == {"status", "timestamp", "version", "environment"}
    assert body["status"] == "healthy" and body["version"] == "2.0.0"
    assert ISO_Z.match(body["timestamp"])
    assert set(body["environment"]) == {
        "APP_ENV",
        "PORT",
        "authentication_configured",
        "database_configured",
        "encryption_configured",
    }
    assert body["environment"]["APP_ENV"] == "test"
    assert body["environment"]["PORT"] == "8000"
    assert body["environment"]["encryption_configured"] is False  # dev key in tests
    assert body["environment"]["authentication_configured"] is False


def _production_grade(settings):
    settings.SECRET_KEY = secrets.token_urlsafe(64)
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "SIGNING_KEY": settings.SECRET_KEY}
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    settings.BLIND_INDEX_KEY = secrets.token_urlsafe(32)


def test_health_reports_configured_keys(settings):
    _production_grade(settings)
    environment = Client().get("/health").json()["environment"]
    assert environment["authentication_configured"] is True and environment["encryption_configured"] is True


@pytest.mark.parametrize(
    "weaken, flag",
    [
        (lambda s: setattr(s, "SECRET_KEY", s.DEV_SECRET_KEY), "authentication_configured"),
        (lambda s: setattr(s, "SECRET_KEY", "short-but-not-a-default"), "authentication_configured"),
        (lambda s: setattr(s, "SIMPLE_JWT", {**s.SIMPLE_JWT, "SIGNING_KEY": "short"}), "authentication_configured"),
        (
            lambda s: setattr(s, "FIELD_ENCRYPTION_KEYS", [Fernet.generate_key().decode(), s.DEV_FIELD_KEY]),
            "encryption_configured",
        ),
        (lambda s: setattr(s, "FIELD_ENCRYPTION_KEYS", ["not-a-fernet-key"]), "encryption_configured"),
        (lambda s: setattr(s, "BLIND_INDEX_KEY", s.DEV_BLIND_INDEX_KEY), "encryption_configured"),
        (lambda s: setattr(s, "BLIND_INDEX_KEY", "too-short"), "encryption_configured"),
    ],
)
def test_health_booleans_are_true_only_for_production_grade_keys(settings, weaken, flag):
    _production_grade(settings)
    weaken(settings)
    body = Client().get("/health").json()
    assert body["environment"][flag] is False
    assert "configuration_problems" not in body  # anonymous callers never learn which key or rule


def test_health_oidc_alone_does_not_make_a_development_key_configured(settings):
    # Platform tokens are accepted beside OIDC ones: a public signing key still lets anyone forge them.
    settings.OIDC_JWKS_URL = "https://idp.example.com/.well-known/jwks.json"
    settings.OIDC_ISSUER = "https://idp.example.com"
    settings.OIDC_AUDIENCE = "routiq"
    assert Client().get("/health").json()["environment"]["authentication_configured"] is False


def test_health_tells_staff_which_setting_fails_and_never_its_value(settings):
    _production_grade(settings)
    settings.BLIND_INDEX_KEY = "too-short"
    staff = get_user_model().objects.create_user("ops", password="ops-password-123", is_staff=True)
    client = Client()
    client.force_login(staff)
    response = client.get("/health")
    assert response.json()["configuration_problems"] == {"BLIND_INDEX_KEY": "is too short (at least 32 characters)"}
    assert "too-short" not in response.content.decode()


def test_health_gives_no_details_to_a_signed_in_non_staff_user():
    user = get_user_model().objects.create_user("someone", password="someone-password-123")
    client = Client()
    client.force_login(user)
    assert "configuration_problems" not in client.get("/health").json()


def test_health_staff_details_are_empty_when_everything_is_production_grade(settings):
    _production_grade(settings)
    staff = get_user_model().objects.create_user("ops", password="ops-password-123", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get("/health").json()["configuration_problems"] == {}


def test_root_is_the_routiq_shape():
    body = Client().get("/").json()
    assert body == {
        "message": "Routiq Backend API",
        "version": "2.0.0",
        "status": "healthy",
        "timestamp": body["timestamp"],
        "docs": "/docs",
        "redoc": "/redoc",
    }
    assert ISO_Z.match(body["timestamp"])


def test_deep_health_is_not_public():
    response = Client().get("/ops/health/?format=json")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_deep_health_checks_database_cache_and_broker_for_staff():
    staff = get_user_model().objects.create_user("ops", password="ops-password-123", is_staff=True)
    client = Client()
    client.force_login(staff)
    response = client.get("/ops/health/?format=json")
    assert response.status_code == 200, response.content
    checks = " ".join(response.json())
    assert "Database" in checks and "Cache" in checks and "Broker" in checks


def test_deep_health_reports_a_broker_that_is_down(settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    staff = get_user_model().objects.create_user("ops", password="ops-password-123", is_staff=True)
    client = Client()
    client.force_login(staff)
    response = client.get("/ops/health/?format=json")
    assert response.status_code == 500
    assert "Broker" in response.content.decode()


def test_health_body_is_its_declared_output_rendered_field_by_field(settings):
    from core.serializers import field_by_field_rendering

    staff = get_user_model().objects.create_user("ops", password="ops-password-123", is_staff=True)
    staff_client = Client()
    staff_client.force_login(staff)
    for client in (Client(), staff_client):
        compiled = client.get("/health").json()
        with field_by_field_rendering():
            reference = client.get("/health").json()
        assert list(compiled) == list(reference) and compiled["environment"] == reference["environment"]
        assert list(compiled["environment"]) == [
            "APP_ENV",
            "PORT",
            "authentication_configured",
            "database_configured",
            "encryption_configured",
        ]
    assert list(compiled)[:4] == ["status", "timestamp", "version", "environment"]


def test_health_schema_declares_the_environment_fields():
    from drf_spectacular.generators import SchemaGenerator

    components = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    assert set(components["HealthEnvironment"]["properties"]) == {
        "APP_ENV",
        "PORT",
        "authentication_configured",
        "database_configured",
        "encryption_configured",
    }
    assert "configuration_problems" not in components["Health"]["required"]


def test_anonymous_health_touches_no_database(django_assert_num_queries):
    client = Client()
    with django_assert_num_queries(0):
        assert client.get("/health").status_code == 200


@pytest.mark.usefixtures("frozen_ratelimit_clock")
def test_health_is_exempt_from_rate_limits():
    # A load balancer probes it every few seconds from one address: 150 in one window all answer.
    client = Client()
    responses = [client.get("/health") for _ in range(150)]
    assert {response.status_code for response in responses} == {200}
    assert not {"X-RateLimit-Limit", "Retry-After"} & set(responses[-1].headers)
