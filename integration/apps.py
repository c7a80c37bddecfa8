from django.apps import AppConfig

from core import registry


class IntegrationConfig(AppConfig):
    name = "integration"

    def ready(self):
        from integration.events import OWNER_TYPE
        from integration.schedules import PERIODIC_TASKS
        from webhooks import owners

        registry.register(
            self,
            demo=[registry.DemoContributor("integration.demo.seed", order=200)],  # "loverescue"
            schedules=PERIODIC_TASKS,
        )
        # Webhook endpoints of a partner are shown and searched by the partner's name (webhooks.owners).
        owners.register_model(OWNER_TYPE, "integration.IntegrationPartner", label="LoveRescue integration partner")
