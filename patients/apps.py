from django.apps import AppConfig

from core import registry


class PatientsConfig(AppConfig):
    name = "patients"

    def ready(self):
        from patients.events import OWNER_TYPE
        from patients.schedules import PERIODIC_TASKS
        from webhooks import owners

        registry.register(
            self,
            demo=[registry.DemoContributor("patients.demo.seed", order=400)],  # "mark"
            schedules=PERIODIC_TASKS,
        )
        # Mark webhook endpoints belong to an organization: shown and searched by its name (webhooks.owners).
        owners.register_model(OWNER_TYPE, "accounts.Organization", id_field="public_id", label="Organization")
