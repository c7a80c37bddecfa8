from django.apps import AppConfig

from core import registry


class AuditConfig(AppConfig):
    name = "audit"

    def ready(self):
        from audit.schedules import PERIODIC_TASKS

        registry.register(self, schedules=PERIODIC_TASKS)
