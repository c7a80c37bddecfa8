"""UTC timestamps rendered the one way every API shows them: ISO 8601, millisecond precision, `Z`."""

from datetime import UTC, datetime

from django.utils import timezone


def utc_now() -> datetime:
    return timezone.now()


def iso_utc(value: datetime | None) -> str | None:
    """`2025-06-30T12:00:00.000Z`. Naive datetimes are taken as UTC (we store UTC only)."""
    if value is None:
        return None
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def iso_text(value: str | datetime | None) -> str | None:
    """`iso_utc` of a datetime; text is taken as already rendered that way (e.g. by the database)."""
    return value if value.__class__ is str else iso_utc(value)


def iso_utc_from_epoch(seconds: int | float) -> str:
    return iso_utc(datetime.fromtimestamp(seconds, tz=UTC))
