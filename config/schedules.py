"""Compatibility view of the platform's periodic tasks; they are no longer declared here.

Each app declares its own entries in `<app>/schedules.py` (`PERIODIC_TASKS`) and registers them in its
AppConfig.ready() (see core/registry.py); `manage.py setup_periodic_tasks` installs them all. This module
re-exports the schedule types and, as `PERIODIC_TASKS`, every registered entry (computed on access, so
the apps must be loaded), for code that still reads `config.schedules`. New code: `core.registry`.
"""

from core.registry import Crontab, Interval, Schedule

__all__ = ("Crontab", "Interval", "Schedule")  # and PERIODIC_TASKS, through __getattr__ below


def __getattr__(name: str):
    if name == "PERIODIC_TASKS":
        from core import registry

        return registry.periodic_tasks()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
