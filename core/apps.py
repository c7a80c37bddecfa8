from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"

    def ready(self):
        from core import registry
        from core.schedules import PERIODIC_TASKS

        registry.register(self, schedules=PERIODIC_TASKS)
