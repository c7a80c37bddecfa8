from django.apps import AppConfig

from core import registry


class IntegrationConfig(AppConfig):
    name = "integration"

    def ready(self):
        from integration.schedules import PERIODIC_TASKS

        registry.register(
            self,
            demo=[registry.DemoContributor("integration.demo.seed", order=200)],  # "loverescue"
            schedules=PERIODIC_TASKS,
        )
