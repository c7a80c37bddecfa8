from django.apps import AppConfig

from core import registry


class MessagingConfig(AppConfig):
    name = "messaging"

    def ready(self):
        from messaging.schedules import PERIODIC_TASKS

        registry.register(self, schedules=PERIODIC_TASKS)
