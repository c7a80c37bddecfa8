from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"

    def ready(self):
        from core import registry
        from core.schedules import PERIODIC_TASKS

        registry.register(self, schedules=PERIODIC_TASKS)
        # After the admin's autodiscovery (the admin app comes first in INSTALLED_APPS): django-celery-beat's
        # admins replaced by audited subclasses, so beat schedule edits are audit events.
        from core import admin_beat  # noqa: F401
