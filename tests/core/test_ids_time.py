from datetime import UTC, datetime, timedelta, timezone

import pytest

from accounts.models import Organization
from core.ids import OrganizationIdConverter, is_public_id, new_public_id
from core.time import iso_utc, iso_utc_from_epoch


def test_public_ids_have_prefix_and_are_unique():
    ids = {new_public_id("pat") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("pat_") and len(i) == 28 and is_public_id(i, "pat") for i in ids)
    assert not is_public_id("org_abc", "pat")
    assert not is_public_id("pat_ab/c", "pat")


@pytest.mark.parametrize("prefix", ["", "Pat", "p-t", "1x"])
def test_bad_prefix_is_refused(prefix):
    with pytest.raises(ValueError):
        new_public_id(prefix)


def test_the_random_part_is_one_uniform_draw_over_every_base62_string(monkeypatch):
    """Each of the 62**24 strings is one value of a single secrets.randbelow draw (so every character is
    uniform and independent): the smallest and largest draws give the first and last strings."""
    import core.ids

    asked = []

    def draw(bound, value):
        asked.append(bound)
        return value

    monkeypatch.setattr(core.ids.secrets, "randbelow", lambda bound: draw(bound, 0))
    assert new_public_id("lead") == "lead_" + "a" * 24
    monkeypatch.setattr(core.ids.secrets, "randbelow", lambda bound: draw(bound, bound - 1))
    assert new_public_id("lead") == "lead_" + "9" * 24
    monkeypatch.setattr(core.ids.secrets, "randbelow", lambda bound: draw(bound, 61 + 62 * 26))
    assert new_public_id("x", length=3) == "x_9Aa"  # least significant digit first
    assert asked == [62**24, 62**24, 62**3]


def test_organization_converter_matches_only_org_ids():
    import re

    regex = re.compile(f"^{OrganizationIdConverter().regex}$")
    assert regex.match("org_2xwHiNrj68eaRUlX10anlXGvzX7")
    assert not regex.match("pat_2xwHiNrj68eaRUlX10anlXGvzX7")
    assert not regex.match("org_")


@pytest.mark.django_db
def test_organization_gets_an_org_public_id():
    organization = Organization.objects.create(name="Clinic")
    assert is_public_id(organization.public_id, "org")
    assert Organization.objects.create(name="Other").public_id != organization.public_id


def test_iso_utc_renders_milliseconds_and_z():
    assert iso_utc(datetime(2025, 6, 30, 12, 0, 0, 123456, tzinfo=UTC)) == "2025-06-30T12:00:00.123Z"
    paris = timezone(timedelta(hours=2))
    assert iso_utc(datetime(2025, 6, 30, 14, 0, tzinfo=paris)) == "2025-06-30T12:00:00.000Z"
    assert iso_utc(datetime(2025, 6, 30, 12, 0)) == "2025-06-30T12:00:00.000Z"  # naive = UTC
    assert iso_utc(None) is None
    assert iso_utc_from_epoch(1640995200) == "2022-01-01T00:00:00.000Z"
