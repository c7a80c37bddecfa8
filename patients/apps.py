from django.apps import AppConfig

from core import registry


class PatientsConfig(AppConfig):
    name = "patients"

    def ready(self):
        from patients.schedules import PERIODIC_TASKS

        registry.register(self, schedules=PERIODIC_TASKS)
