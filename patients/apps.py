from django.apps import AppConfig

from core import registry


class PatientsConfig(AppConfig):
    name = "patients"

    def ready(self):
        from patients.schedules import PERIODIC_TASKS

        registry.register(
            self,
            demo=[registry.DemoContributor("patients.demo.seed", order=400)],  # "mark"
            schedules=PERIODIC_TASKS,
        )
