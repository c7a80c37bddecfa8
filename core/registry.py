"""What each app contributes to core's management commands, so that core imports no app.

Apps register from their `AppConfig.ready()` (the place Django gives an app to plug itself in, as
`django.core.checks.register` does); core asks the registry, never the apps:

    # integration/apps.py
    from core import registry

    class IntegrationConfig(AppConfig):
        name = "integration"

        def ready(self):
            from integration.schedules import PERIODIC_TASKS

            registry.register(
                self,
                demo=[registry.DemoContributor("integration.demo.seed", order=200)],
                schedules=PERIODIC_TASKS,
            )

- **Periodic tasks** (`manage.py setup_periodic_tasks`): each app declares its `Schedule` entries in its
  own `<app>/schedules.py` (`PERIODIC_TASKS = (...)`) and registers them. `periodic_tasks()` returns them
  all, app by app in INSTALLED_APPS order.
- **Demo data** (`manage.py seed_demo`): a contributor is a function `seed(ctx: SeedContext) ->
  (key, value)` (or its dotted path, imported only when seed_demo runs) with an `order`. They run in
  ascending order, one key of `seed_demo --json` each. The base data (Demo Clinic, the `demo` and `admin`
  users) is accounts' (orders 100-120; it provides `ctx.organization`, `ctx.demo_user`, `ctx.password`);
  the APIs' data come after (LoveRescue 200, CareOS 300).

Registering again for the same app replaces its entries (ready() may run again when a test swaps
INSTALLED_APPS); entries of apps that are not installed are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.apps import AppConfig, apps
from django.utils.module_loading import import_string

# --- periodic tasks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crontab:
    """A crontab in UTC (django-celery-beat's CrontabSchedule fields)."""

    minute: str = "0"
    hour: str = "*"
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"


@dataclass(frozen=True)
class Interval:
    seconds: int


@dataclass(frozen=True)
class Schedule:
    """One periodic task. `name` is the PeriodicTask's name and must stay stable (renaming one creates a
    new task and disables the old)."""

    name: str
    task: str
    when: Crontab | Interval
    description: str = ""


# --- demo data --------------------------------------------------------------------------------------


class SeedContext:
    """What seed_demo hands every contributor: `log(message)`, `changed(message)` (log a change; no
    change at all prints "nothing changed"), `base_url`, and what earlier contributors `provide()`d, read
    as attributes (accounts provides `organization`, `demo_user` and `password`)."""

    def __init__(self, *, log: Callable[[str], None], base_url: str):
        self.log = log
        self.base_url = base_url
        self.changes: list[str] = []
        self._provided: dict[str, Any] = {}

    def changed(self, message: str) -> None:
        self.changes.append(message)
        self.log(message)

    def provide(self, **values: Any) -> None:
        """Share values with the contributors that run later (same value again is fine)."""
        for name, value in values.items():
            if name.startswith("_") or name in self.__dict__ or hasattr(type(self), name):
                raise ValueError(f"seed_demo: {name!r} is a SeedContext attribute, not a provided value")
            if name in self._provided and self._provided[name] is not value:
                raise ValueError(f"seed_demo: {name!r} was already provided by an earlier contributor")
            self._provided[name] = value

    def __getattr__(self, name: str) -> Any:
        provided = self.__dict__.get("_provided", {})
        if name in provided:
            return provided[name]
        raise AttributeError(
            f"seed_demo: no contributor has provided {name!r} yet (contributors run by ascending order; "
            "the base data is accounts', orders 100-120)"
        )


Seed = Callable[[SeedContext], tuple[str, object]]


@dataclass(frozen=True)
class DemoContributor:
    """`seed` is a function or its dotted path; lower `order` runs first."""

    seed: Seed | str
    order: int
    app_label: str = field(default="", compare=False)

    def resolve(self) -> Seed:
        return import_string(self.seed) if isinstance(self.seed, str) else self.seed

    @property
    def label(self) -> str:
        return self.seed if isinstance(self.seed, str) else f"{self.seed.__module__}.{self.seed.__qualname__}"


# --- the registry -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Contribution:
    demo: tuple[DemoContributor, ...]
    schedules: tuple[Schedule, ...]


_contributions: dict[str, _Contribution] = {}


def register(
    app: AppConfig | str,
    *,
    demo: Iterable[DemoContributor] = (),
    schedules: Iterable[Schedule] = (),
) -> None:
    """Declare what `app` (its AppConfig, or its label) contributes. Call from AppConfig.ready()."""
    label = app.label if isinstance(app, AppConfig) else app
    demo = tuple(demo)
    schedules = tuple(schedules)
    for contributor in demo:
        if not isinstance(contributor, DemoContributor):
            raise TypeError(f"{label}: demo contributors must be DemoContributor, not {contributor!r}")
    for entry in schedules:
        if not isinstance(entry, Schedule):
            raise TypeError(f"{label}: schedules must be Schedule entries, not {entry!r}")
    _contributions[label] = _Contribution(
        demo=tuple(DemoContributor(seed=c.seed, order=c.order, app_label=label) for c in demo),
        schedules=schedules,
    )


def _installed() -> list[_Contribution]:
    """Contributions of installed apps, in INSTALLED_APPS order."""
    return [_contributions[config.label] for config in apps.get_app_configs() if config.label in _contributions]


def periodic_tasks() -> tuple[Schedule, ...]:
    """Every installed app's periodic tasks, app by app in INSTALLED_APPS order."""
    return tuple(entry for contribution in _installed() for entry in contribution.schedules)


def demo_contributors() -> list[DemoContributor]:
    """Every installed app's demo contributors by ascending order (ties: INSTALLED_APPS order, then the
    order the app registered them)."""
    contributors = [contributor for contribution in _installed() for contributor in contribution.demo]
    return sorted(contributors, key=lambda contributor: contributor.order)  # sorted() is stable
