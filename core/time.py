"""UTC timestamps rendered the one way every API shows them (ISO 8601, millisecond precision, `Z`), and
ISO 8601 instants parsed from requests, range-checked (`parse_instant`)."""

import re
from datetime import UTC, datetime

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime


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


# --- Parsing -----------------------------------------------------------------------------------------

# Instants outside this range are refused: near year 1 or 9999 an offset conversion or a window computed
# from the instant (start minus its length, end plus a day) overflows datetime (a 500, not a 400).
MIN_INSTANT = datetime(1900, 1, 1, tzinfo=UTC)
MAX_INSTANT = datetime(9000, 1, 1, tzinfo=UTC)

# ISO 8601 extended date-time with an offset (the RFC 3339 profile; JavaScript's toISOString() matches).
_OFFSET_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})")
# An unencoded "+00:00" offset arrives as " 00:00" (a "+" in a query string is a space).
_SPACE_FOR_PLUS_RE = re.compile(r"(T[\d:.]+) (\d{2}:?\d{2})$")


def _in_range(value: datetime | None) -> datetime | None:
    """`value` in UTC if it lies within [MIN_INSTANT, MAX_INSTANT), else None."""
    if value is None:
        return None
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        return None
    return value if MIN_INSTANT <= value < MAX_INSTANT else None


def parse_instant(value, *, require_offset: bool = False) -> datetime | None:
    """An ISO 8601 instant as an aware UTC datetime within [MIN_INSTANT, MAX_INSTANT); None when invalid.

    Default (query parameters): a date or a date-time, naive values taken as UTC. `require_offset`
    (timestamps a client records): only a date-time with `Z` or an offset (seconds optional)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if require_offset:
        if not _OFFSET_DATETIME_RE.fullmatch(text):
            return None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        return _in_range(parsed) if parsed.utcoffset() is not None else None
    text = _SPACE_FOR_PLUS_RE.sub(r"\1+\2", text)
    try:
        parsed = parse_datetime(text.replace("z", "Z"))
    except ValueError:
        parsed = None
    if parsed is None:
        try:
            day = parse_date(text)
        except ValueError:
            day = None
        if day is None:
            return None
        parsed = datetime(day.year, day.month, day.day)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return _in_range(parsed)
