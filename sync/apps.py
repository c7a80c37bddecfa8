from django.apps import AppConfig

from core import registry


class SyncConfig(AppConfig):
    name = "sync"

    def ready(self):
        from sync.schedules import PERIODIC_TASKS

        registry.register(
            self,
            demo=[registry.DemoContributor("sync.demo.seed", order=500)],
            schedules=PERIODIC_TASKS,
        )
