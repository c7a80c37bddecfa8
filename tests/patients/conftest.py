"""Fixtures of the Mark domain tests: two clinics and a clock injected into every service call."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accounts import services as accounts_services
from core.actors import Actor

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ACTOR = Actor.system("tests")


@pytest.fixture
def clinic(db):
    return accounts_services.organization_create(name="Clínica Sol", actor=ACTOR)


@pytest.fixture
def other_clinic(db):
    return accounts_services.organization_create(name="Other clinic", actor=ACTOR)
