from django.apps import AppConfig

from core import registry


class WebhooksConfig(AppConfig):
    name = "webhooks"

    def ready(self):
        from webhooks.schedules import PERIODIC_TASKS

        registry.register(self, schedules=PERIODIC_TASKS)
