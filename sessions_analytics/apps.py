from django.apps import AppConfig


class SessionsAnalyticsConfig(AppConfig):
    name = "sessions_analytics"
