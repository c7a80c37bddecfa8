from django.apps import AppConfig

from core import registry


class LeadsConfig(AppConfig):
    name = "leads"

    def ready(self):
        from leads.schedules import PERIODIC_TASKS

        registry.register(
            self,
            demo=[registry.DemoContributor("leads.demo.seed", order=300)],  # "careos"
            schedules=PERIODIC_TASKS,
        )
