from django.apps import AppConfig
from django.db.models.signals import post_migrate

from core import registry


class AuditConfig(AppConfig):
    name = "audit"

    def ready(self):
        from audit.schedules import PERIODIC_TASKS

        registry.register(self, schedules=PERIODIC_TASKS)
        post_migrate.connect(_grant_roles_after_migrate, sender=self)


def _grant_roles_after_migrate(using="default", **kwargs):
    """The owner just migrated: (re)grant the app and purge roles on the schema as it now is, so a table
    added by this migration is covered before the app uses it (core.db_roles)."""
    from django.conf import settings
    from django.db import connections

    from core.db_roles import apply_grants

    connection = connections[using]
    if settings.DATABASE_APP_ROLE and connection.vendor == "postgresql":
        apply_grants(connection, app_role=settings.DATABASE_APP_ROLE, purge_role=settings.DATABASE_PURGE_ROLE)
