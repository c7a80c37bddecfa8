"""Pure arithmetic behind Mark's analytics endpoints (spec: mark-assistant-api.md, "Analytics").

No ORM and no clock: the selectors (patients/analytics_queries.py) run the SQL aggregates and pass the few
aggregate rows in; the view passes "today" and the clinic's time zone. Everything a reader of
docs/mark.md ("API: analytics") is promised is decided here, so it can be tested at its edges:

- the date range: `start_date`/`end_date` as ISO 8601 dates (whole days in the clinic's time zone, both
  inclusive) or date-times (instants; no offset = UTC, as every Mark filter), defaults, and the checks
  (end before start, a span longer than MARK_ANALYTICS_MAX_DAYS days);
- interval buckets: every day/week/month of the range is present, empty ones with zeros; a bucket is
  named by the ISO date it starts on ("2023-05-01"; weeks start on Monday, months on the 1st);
- all 24 hours present in `by_hour`;
- percentages at one decimal that add up to exactly 100 (largest-remainder method on tenths);
- averages at one decimal, half up (core.rounding);
- engagement buckets from a patient's own WhatsApp messages in the range;
- cancellation reasons grouped by their normalised text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from core.domain import Invalid
from core.rounding import ratio
from core.time import MAX_INSTANT, MIN_INSTANT, parse_instant

INTERVALS = ("day", "week", "month")
DEFAULT_INTERVAL = "day"
DEFAULT_DAYS = 30  # no start_date: the 30 local days ending with end_date (default today)
HOURS = tuple(range(24))

# Engagement (docs/mark.md): messages the patient wrote in the range.
HIGHLY_ENGAGED_MIN = 10
MODERATELY_ENGAGED_MIN = 3  # 3..9 moderately; 1..2 low; 0 inactive
ENGAGEMENT_BUCKETS = ("highly_engaged", "moderately_engaged", "low_engagement", "inactive")

# Cancellation reasons: the most frequent ones by name, the rest summed as "Other".
MAX_REASONS = 10
OTHER_REASON = "Other"
NO_REASON = "No reason given"

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


# --- The date range --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DateRange:
    """[start, end) in UTC, and the first and last local days it touches (the bucket span)."""

    start: datetime
    end: datetime  # exclusive
    first_day: date
    last_day: date
    time_zone: ZoneInfo


def parse_bound(value: str | None, parameter: str) -> date | datetime | None:
    """A query parameter: a date ("2023-05-01") or an instant (core.time.parse_instant: a date-time, no
    offset = UTC). None when absent; anything else is Invalid naming the parameter."""
    if value is None:
        return None
    text = value.strip()
    if _DATE_RE.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            day = None
        if day is not None and MIN_INSTANT.date() < day < MAX_INSTANT.date():
            return day
    elif "\x00" not in text and len(text) <= 64 and "T" in text.upper():
        instant = parse_instant(text)
        if instant is not None:
            return instant
    raise Invalid(f"{parameter} must be an ISO 8601 date or date-time", details={"parameter": parameter})


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def resolve_range(
    *,
    start: date | datetime | None,
    end: date | datetime | None,
    today: date,
    time_zone: ZoneInfo,
    max_days: int,
) -> DateRange:
    """The range the request asks for. A date bound means the whole local day (start at its midnight, end
    inclusive through its last instant); a date-time bound is that instant (end inclusive). Defaults:
    end = today (local), start = the DEFAULT_DAYS local days ending on end's day."""
    if end is None:
        end = today
    if isinstance(end, datetime):
        end_at = end + timedelta(microseconds=1)  # inclusive instant -> exclusive bound
        last_day = end.astimezone(time_zone).date()
    else:
        end_at = _local_midnight(end + timedelta(days=1), time_zone)
        last_day = end
    if start is None:
        start = last_day - timedelta(days=DEFAULT_DAYS - 1)
    if isinstance(start, datetime):
        start_at = start
        first_day = start.astimezone(time_zone).date()
    else:
        start_at = _local_midnight(start, time_zone)
        first_day = start
    if end_at <= start_at:
        raise Invalid("end_date must not be before start_date", details={"parameter": "end_date"})
    days = (last_day - first_day).days + 1
    if days > max_days:
        raise Invalid(f"The range spans {days} days; at most {max_days} are allowed", details={"parameter": "end_date"})
    return DateRange(start=start_at, end=end_at, first_day=first_day, last_day=last_day, time_zone=time_zone)


def parse_interval(value: str | None) -> str:
    if value is None:
        return DEFAULT_INTERVAL
    if value not in INTERVALS:
        raise Invalid(f"interval must be one of: {', '.join(INTERVALS)}", details={"parameter": "interval"})
    return value


# --- Buckets ---------------------------------------------------------------------------------------------


def bucket_start(day: date, interval: str) -> date:
    """The first day of the bucket `day` falls in: itself, its ISO week's Monday, its month's 1st."""
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def _next_bucket(start: date, interval: str) -> date:
    if interval == "week":
        return start + timedelta(days=7)
    if interval == "month":
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start + timedelta(days=1)


def bucket_starts(first_day: date, last_day: date, interval: str) -> list[date]:
    """Every bucket that overlaps [first_day, last_day], in order (the first may start before first_day)."""
    starts = []
    current = bucket_start(first_day, interval)
    while current <= last_day:
        starts.append(current)
        current = _next_bucket(current, interval)
    return starts


def label(day: date) -> str:
    return day.isoformat()


def as_day(value: date | datetime) -> date:
    """A truncated bucket value from the database (a date, or a local midnight on some backends)."""
    return value.date() if isinstance(value, datetime) else value


def fill_buckets(
    rows: Mapping[date, Mapping[str, int]], *, first_day: date, last_day: date, interval: str, keys: Sequence[str]
) -> list[tuple[date, dict[str, int]]]:
    """One entry per bucket of the range, zeros where the database had no row."""
    return [
        (start, {key: int(rows.get(start, {}).get(key) or 0) for key in keys})
        for start in bucket_starts(first_day, last_day, interval)
    ]


def fill_hours(rows: Mapping[int, int]) -> list[dict]:
    return [{"hour": hour, "count": int(rows.get(hour) or 0)} for hour in HOURS]


# --- Rounding --------------------------------------------------------------------------------------------


def percentages(counts: Sequence[int], places: int = 1) -> list[float]:
    """Percentages at `places` decimals that add up to exactly 100 (all zeros when every count is 0):
    each share's floor in units of 10**-places, the units still missing going to the largest remainders
    (ties to the earlier item, so the caller's order decides; largest-remainder / Hamilton method)."""
    total = sum(counts)
    if total <= 0:
        return [0.0 for _ in counts]
    units = 100 * 10**places
    exact = [Decimal(count) * units / total for count in counts]
    floors = [int(value) for value in exact]
    short = units - sum(floors)
    for index in sorted(range(len(counts)), key=lambda i: (-(exact[i] - floors[i]), i))[:short]:
        floors[index] += 1
    return [float(Decimal(value).scaleb(-places)) for value in floors]


def average(total: int | None, count: int | None) -> float | None:
    """total / count at one decimal, half up; None when there is nothing to average."""
    return ratio(int(total or 0), int(count or 0))


def with_percentages(items: Sequence[tuple[object, int]], key: str) -> list[dict]:
    """[(value, count)] -> [{key: value, "count", "percentage"}] in the given order."""
    shares = percentages([count for _value, count in items])
    return [
        {key: value, "count": count, "percentage": share} for (value, count), share in zip(items, shares, strict=True)
    ]


def by_count(counts: Mapping[object, int]) -> list[tuple[object, int]]:
    """Most frequent first, ties by value, zero counts left out."""
    return sorted(
        ((value, int(count)) for value, count in counts.items() if count), key=lambda item: (-item[1], item[0])
    )


# --- The three bodies ------------------------------------------------------------------------------------


def conversation_stats(
    *,
    by_bucket: Mapping[date, Mapping[str, int]],
    by_language: Mapping[str, Mapping[str, int]],
    by_hour: Mapping[int, int],
    period: DateRange,
    interval: str,
) -> dict:
    """`by_bucket`/`by_language`: {key: {"count", "messages"}}; `by_hour`: {local hour: count}."""
    total = sum(int(row["count"]) for row in by_language.values())
    messages = sum(int(row["messages"] or 0) for row in by_language.values())
    buckets = fill_buckets(
        by_bucket, first_day=period.first_day, last_day=period.last_day, interval=interval, keys=("count", "messages")
    )
    return {
        "total_conversations": total,
        "average_length": average(messages, total),
        "by_interval": [
            {"interval": label(start), "count": row["count"], "average_length": average(row["messages"], row["count"])}
            for start, row in buckets
        ],
        "by_language": with_percentages(
            by_count({language: row["count"] for language, row in by_language.items()}), "language"
        ),
        "by_hour": fill_hours(by_hour),
    }


def appointment_stats(
    *,
    by_bucket: Mapping[date, Mapping[str, int]],
    by_type: Mapping[str, int],
    reasons: Iterable[str],
    statuses: Sequence[str],
    period: DateRange,
    interval: str,
) -> dict:
    """`by_bucket`: {bucket start: {status: count}}; `by_type`: {appointment type ("" = none): count};
    `reasons`: (spelling, count) per distinct cancellation reason in the range, most frequent first."""
    status_totals = {status: sum(int(row.get(status) or 0) for row in by_bucket.values()) for status in statuses}
    total = sum(status_totals.values())
    buckets = fill_buckets(
        by_bucket, first_day=period.first_day, last_day=period.last_day, interval=interval, keys=statuses
    )
    return {
        "total_appointments": total,
        "by_status": with_percentages([(status, status_totals[status]) for status in statuses], "status"),
        "by_type": with_percentages(by_count(dict(by_type)), "type"),
        "by_interval": [{"interval": label(start), **row} for start, row in buckets],
        "cancellation_reasons": with_percentages(reason_counts(reasons), "reason"),
    }


def normalise_reason(reason: str | None) -> str:
    """Whitespace collapsed; "" becomes NO_REASON."""
    return " ".join((reason or "").split()) or NO_REASON


def reason_key(reason: str | None) -> str:
    """What equal reasons share: the normalised text, case-folded. Its blind index is stored beside the
    encrypted reason (Appointment.cancellation_reason_index), so SQL can group reasons without reading them."""
    return normalise_reason(reason).casefold()


def reason_counts(groups: Sequence[tuple[str | None, int]], limit: int = MAX_REASONS) -> list[tuple[str, int]]:
    """`groups`: one (shown spelling, count) per distinct reason, most frequent first; only the first `limit`
    need a spelling (None past it: they are never shown). Past the `limit` most frequent, the rest are summed
    as "Other" (an "Other" among the kept ones merges into it instead of appearing twice)."""
    total = sum(count for _text, count in groups)
    named = sorted(
        ((normalise_reason(text), count) for text, count in groups[:limit]),
        key=lambda item: (-item[1], item[0].casefold()),
    )
    if len(groups) <= limit:
        return named
    kept = [group for group in named[: limit - 1] if group[0].casefold() != OTHER_REASON.casefold()]
    return [*kept, (OTHER_REASON, total - sum(count for _reason, count in kept))]


def engagement_bucket(messages: int) -> str:
    if messages >= HIGHLY_ENGAGED_MIN:
        return "highly_engaged"
    if messages >= MODERATELY_ENGAGED_MIN:
        return "moderately_engaged"
    if messages >= 1:
        return "low_engagement"
    return "inactive"


def patient_stats(
    *,
    by_language: Mapping[str, int],
    new_by_bucket: Mapping[date, int],
    engaged: Mapping[str, int],
    period: DateRange,
    interval: str,
) -> dict:
    """`by_language`: the clinic's patients (registered before the range's end) per language;
    `new_by_bucket`: registrations per bucket start; `engaged`: patients with messages in the range per
    engagement bucket (highly/moderately/low; the inactive are the rest)."""
    total = sum(int(count) for count in by_language.values())
    active = sum(int(engaged.get(bucket) or 0) for bucket in ENGAGEMENT_BUCKETS[:3])
    buckets = fill_buckets(
        {start: {"count": count} for start, count in new_by_bucket.items()},
        first_day=period.first_day,
        last_day=period.last_day,
        interval=interval,
        keys=("count",),
    )
    return {
        "total_patients": total,
        "active_patients": active,
        "by_language": with_percentages(by_count(dict(by_language)), "language"),
        "new_patients_by_interval": [{"interval": label(start), "count": row["count"]} for start, row in buckets],
        "engagement": {
            **{bucket: int(engaged.get(bucket) or 0) for bucket in ENGAGEMENT_BUCKETS[:3]},
            "inactive": max(total - active, 0),
        },
    }
