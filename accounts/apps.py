from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps

from core import registry


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self):
        from accounts import staff_auth

        # Staff sign-ins, sign-outs and failures go to the audit trail (never the attempted password).
        staff_auth.connect_signals()
        # The base demo data, before every other app's (see core/registry.py).
        registry.register(
            self,
            demo=[
                registry.DemoContributor("accounts.demo.platform", order=100),  # Demo Clinic + user `demo`
                registry.DemoContributor("accounts.demo.admin", order=110),
                registry.DemoContributor("accounts.demo.docs", order=120),
            ],
        )


class PlatformAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin whose `admin.site` is our site: every ModelAdmin registers on it, and it asks
    for a TOTP code when ADMIN_REQUIRE_2FA is on."""

    default = False  # named explicitly in INSTALLED_APPS; AccountsConfig stays this module's default
    default_site = "accounts.admin_site.PlatformAdminSite"
