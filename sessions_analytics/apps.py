from django.apps import AppConfig

from core import registry


class SessionsAnalyticsConfig(AppConfig):
    name = "sessions_analytics"

    def ready(self):
        registry.register(
            self,
            demo=[registry.DemoContributor("sessions_analytics.demo.seed", order=600)],  # "therapist"
        )
