import re

import pytest
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
        "APP_ENV", "PORT", "authentication_configured", "database_configured", "encryption_configured"
    }
    assert body["environment"]["APP_ENV"] == "test"
    assert body["environment"]["PORT"] == "8000"
    assert body["environment"]["encryption_configured"] is False  # dev key in tests


def test_health_reports_configured_encryption(settings):
    from cryptography.fernet import Fernet

    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    assert Client().get("/health").json()["environment"]["encryption_configured"] is True


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
