import dataclasses

from django.conf import settings
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable
from kombu import Connection


@dataclasses.dataclass
class Broker(HealthCheck):
    """The Celery broker accepts a connection (Redis, or the embedded filesystem queue)."""

    def run(self):
        try:
            with Connection(
                settings.CELERY_BROKER_URL,
                transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
                connect_timeout=3,
            ) as connection:
                connection.ensure_connection(max_retries=1)
        except Exception as exc:  # any failure to connect is "unavailable"
            raise ServiceUnavailable("Broker unavailable") from exc
