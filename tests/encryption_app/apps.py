from django.apps import AppConfig


class EncryptionAppConfig(AppConfig):
    """Tests-only models for core.encryption; installed only when APP_ENV=test."""

    name = "tests.encryption_app"
    label = "encryption_app"
    default_auto_field = "django.db.models.BigAutoField"
