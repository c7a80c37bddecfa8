from django.apps import AppConfig

from core import registry


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self):
        # The base demo data, before every other app's (see core/registry.py).
        registry.register(
            self,
            demo=[
                registry.DemoContributor("accounts.demo.platform", order=100),  # Demo Clinic + user `demo`
                registry.DemoContributor("accounts.demo.admin", order=110),
                registry.DemoContributor("accounts.demo.docs", order=120),
            ],
        )
