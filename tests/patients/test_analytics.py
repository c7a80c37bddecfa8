"""patients/analytics.py: the pure arithmetic of Mark's analytics (no database): date ranges and their
checks, buckets, hours, percentages that add up to 100, averages, engagement and cancellation reasons."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from core.domain import Invalid
from patients import analytics

MADRID = ZoneInfo("Europe/Madrid")


def _range(start, end, *, today=date(2026, 3, 10), tz=MADRID, max_days=366):
    return analytics.resolve_range(start=start, end=end, today=today, time_zone=tz, max_days=max_days)


# --- Parameters and ranges -------------------------------------------------------------------------------


def test_parse_bound_reads_dates_and_instants():
    assert analytics.parse_bound(None, "start_date") is None
    assert analytics.parse_bound("2026-03-01", "start_date") == date(2026, 3, 1)
    assert analytics.parse_bound("2026-03-01T10:00:00+02:00", "start_date") == datetime(2026, 3, 1, 8, tzinfo=UTC)
    assert analytics.parse_bound("2026-03-01T10:00:00", "end_date") == datetime(2026, 3, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    "value", ["", "yesterday", "2026-02-30", "2026-13-01", "0001-01-01", "9999-12-31", "2026-03-01T25:00", "x" * 80]
)
def test_parse_bound_refuses_anything_else_naming_the_parameter(value):
    with pytest.raises(Invalid) as caught:
        analytics.parse_bound(value, "end_date")
    assert caught.value.details == {"parameter": "end_date"}


def test_date_bounds_are_whole_local_days():
    period = _range(date(2026, 3, 1), date(2026, 3, 7))
    # Madrid is UTC+1 in March (before the last Sunday): local midnight is 23:00 UTC the day before.
    assert period.start == datetime(2026, 2, 28, 23, tzinfo=UTC)
    assert period.end == datetime(2026, 3, 7, 23, tzinfo=UTC)  # exclusive: through the end of the 7th
    assert (period.first_day, period.last_day) == (date(2026, 3, 1), date(2026, 3, 7))


def test_date_bounds_follow_daylight_saving_time():
    period = _range(date(2026, 6, 1), date(2026, 6, 1))
    assert (period.start, period.end) == (datetime(2026, 5, 31, 22, tzinfo=UTC), datetime(2026, 6, 1, 22, tzinfo=UTC))


def test_date_time_bounds_are_instants_and_the_end_is_inclusive():
    start = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    end = datetime(2026, 3, 2, 8, tzinfo=UTC)
    period = _range(start, end)
    assert period.start == start
    assert period.end == datetime(2026, 3, 2, 8, 0, 0, 1, tzinfo=UTC)
    # 23:30 UTC on the 1st is already the 2nd in Madrid: one local day.
    assert (period.first_day, period.last_day) == (date(2026, 3, 2), date(2026, 3, 2))


def test_defaults_are_the_30_local_days_ending_today():
    period = _range(None, None, today=date(2026, 3, 10))
    assert (period.first_day, period.last_day) == (date(2026, 2, 9), date(2026, 3, 10))
    only_end = _range(None, date(2026, 1, 31))
    assert (only_end.first_day, only_end.last_day) == (date(2026, 1, 2), date(2026, 1, 31))
    only_start = _range(date(2026, 3, 9), None, today=date(2026, 3, 10))
    assert (only_start.first_day, only_start.last_day) == (date(2026, 3, 9), date(2026, 3, 10))


def test_end_before_start_is_invalid_naming_end_date():
    with pytest.raises(Invalid) as caught:
        _range(date(2026, 3, 2), date(2026, 3, 1))
    assert caught.value.details == {"parameter": "end_date"}
    with pytest.raises(Invalid):
        _range(date(2026, 3, 11), None, today=date(2026, 3, 10))  # end defaults to today
    assert _range(date(2026, 3, 1), date(2026, 3, 1)).last_day == date(2026, 3, 1)  # one day is fine


def test_the_span_is_limited_in_local_days_both_ends_counted():
    assert _range(date(2024, 1, 1), date(2024, 12, 31), max_days=366).first_day == date(2024, 1, 1)  # 366 days
    with pytest.raises(Invalid) as caught:
        _range(date(2024, 1, 1), date(2025, 1, 1), max_days=366)  # 367 days
    assert caught.value.details == {"parameter": "end_date"}
    assert "367" in caught.value.message
    with pytest.raises(Invalid):
        _range(date(2026, 3, 1), date(2026, 3, 2), max_days=1)


def test_interval_defaults_to_day_and_refuses_others():
    assert analytics.parse_interval(None) == "day"
    assert analytics.parse_interval("month") == "month"
    with pytest.raises(Invalid) as caught:
        analytics.parse_interval("year")
    assert caught.value.details == {"parameter": "interval"}


# --- Buckets and hours -----------------------------------------------------------------------------------


def test_bucket_starts_cover_the_range_named_by_their_first_day():
    assert analytics.bucket_starts(date(2026, 2, 27), date(2026, 3, 2), "day") == [
        date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 2),
    ]  # fmt: skip
    # 2026-03-04 is a Wednesday: its ISO week starts on Monday the 2nd.
    assert analytics.bucket_starts(date(2026, 3, 4), date(2026, 3, 16), "week") == [
        date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 16),
    ]  # fmt: skip
    assert analytics.bucket_starts(date(2025, 11, 15), date(2026, 2, 1), "month") == [
        date(2025, 11, 1), date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1),
    ]  # fmt: skip
    assert [analytics.label(d) for d in analytics.bucket_starts(date(2024, 2, 29), date(2024, 2, 29), "month")] == [
        "2024-02-01"
    ]


def test_fill_buckets_and_hours_put_zeros_where_the_database_had_no_row():
    rows = {date(2026, 3, 2): {"count": 3}}
    filled = analytics.fill_buckets(
        rows, first_day=date(2026, 3, 1), last_day=date(2026, 3, 3), interval="day", keys=("count", "other")
    )
    assert filled == [
        (date(2026, 3, 1), {"count": 0, "other": 0}),
        (date(2026, 3, 2), {"count": 3, "other": 0}),
        (date(2026, 3, 3), {"count": 0, "other": 0}),
    ]
    hours = analytics.fill_hours({0: 2, 23: 1})
    assert [row["hour"] for row in hours] == list(range(24))
    assert (hours[0]["count"], hours[1]["count"], hours[23]["count"]) == (2, 0, 1)


def test_as_day_accepts_dates_and_midnights():
    assert analytics.as_day(date(2026, 3, 2)) == date(2026, 3, 2)
    assert analytics.as_day(datetime(2026, 3, 2, 0, 0)) == date(2026, 3, 2)


# --- Percentages and averages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "counts, expected",
    [
        ([1, 1, 1], [33.4, 33.3, 33.3]),  # 33.33.. each: the missing 0.1 goes to the first (tie)
        ([150, 250, 50], [33.3, 55.6, 11.1]),  # the spec's appointment example
        ([850, 200, 150, 50], [68.0, 16.0, 12.0, 4.0]),
        ([2, 1], [66.7, 33.3]),
        ([1, 2, 3, 4, 5, 6], [4.8, 9.5, 14.3, 19.0, 23.8, 28.6]),
        ([1, 0, 0], [100.0, 0.0, 0.0]),
        ([0, 0], [0.0, 0.0]),
        ([], []),
    ],
)
def test_percentages_have_one_decimal_and_add_up_to_exactly_100(counts, expected):
    shares = analytics.percentages(counts)
    assert shares == expected
    if sum(counts):
        assert sum(Decimal(str(share)) for share in shares) == Decimal(100)


def test_percentages_add_up_for_many_awkward_splits():
    for n in range(1, 40):
        counts = [(i * 7919) % 13 + 1 for i in range(n)]
        assert sum(Decimal(str(share)) for share in analytics.percentages(counts)) == Decimal(100), counts


def test_averages_have_one_decimal_half_up_and_none_for_nothing():
    assert analytics.average(15, 4) == 3.8  # 3.75
    assert analytics.average(14, 3) == 4.7
    assert analytics.average(0, 0) is None
    assert analytics.average(None, 0) is None


def test_breakdowns_are_most_frequent_first_then_by_name():
    assert analytics.by_count({"es": 1, "ca": 2, "en": 1, "ar": 0}) == [("ca", 2), ("en", 1), ("es", 1)]
    assert analytics.with_percentages([("ca", 2), ("en", 1), ("es", 1)], "language") == [
        {"language": "ca", "count": 2, "percentage": 50.0},
        {"language": "en", "count": 1, "percentage": 25.0},
        {"language": "es", "count": 1, "percentage": 25.0},
    ]


# --- Reasons and engagement ------------------------------------------------------------------------------


def test_reason_key_ignores_case_and_whitespace_and_names_a_missing_reason():
    assert analytics.reason_key("Patient unavailable") == analytics.reason_key("  patient   UNAVAILABLE ")
    assert analytics.reason_key("") == analytics.reason_key(None) == analytics.NO_REASON.casefold()
    assert analytics.reason_key("Sick") != analytics.reason_key("Sick leave")


def test_reason_groups_are_shown_in_their_normalised_spelling_most_frequent_first():
    groups = [("Patient  unavailable ", 3), ("", 2), ("Sick", 2)]
    assert analytics.reason_counts(groups) == [
        ("Patient unavailable", 3),
        (analytics.NO_REASON, 2),
        ("Sick", 2),
    ]


def test_reasons_past_the_limit_are_summed_as_other_without_their_spelling():
    groups = [("a", 5), ("b", 4), ("c", 3), ("d", 2), ("other", 1), ("e", 1)]
    # Past the limit the selector decrypts nothing: the spellings are None.
    hidden = [(text if index < 3 else None, count) for index, (text, count) in enumerate(groups)]
    assert analytics.reason_counts(hidden, limit=3) == [("a", 5), ("b", 4), ("Other", 7)]
    assert sum(count for _r, count in analytics.reason_counts(hidden, limit=3)) == 16
    # An "Other" among the kept ones merges into the summed one instead of appearing twice.
    assert analytics.reason_counts([("Other", 5), ("x", 2), ("y", 1)], limit=2) == [("Other", 8)]


def test_engagement_buckets_by_messages_written():
    assert [analytics.engagement_bucket(n) for n in (0, 1, 2, 3, 9, 10, 50)] == [
        "inactive", "low_engagement", "low_engagement", "moderately_engaged", "moderately_engaged",
        "highly_engaged", "highly_engaged",
    ]  # fmt: skip


def test_patient_stats_inactive_are_the_rest():
    period = _range(date(2026, 3, 1), date(2026, 3, 2))
    body = analytics.patient_stats(
        by_language={"es": 3, "en": 1},
        new_by_bucket={date(2026, 3, 2): 2},
        engaged={"highly_engaged": 1, "moderately_engaged": 0, "low_engagement": 1},
        period=period,
        interval="day",
    )
    assert body == {
        "total_patients": 4,
        "active_patients": 2,
        "by_language": [
            {"language": "es", "count": 3, "percentage": 75.0},
            {"language": "en", "count": 1, "percentage": 25.0},
        ],
        "new_patients_by_interval": [{"interval": "2026-03-01", "count": 0}, {"interval": "2026-03-02", "count": 2}],
        "engagement": {"highly_engaged": 1, "moderately_engaged": 0, "low_engagement": 1, "inactive": 2},
    }


def test_appointment_stats_derive_totals_from_the_buckets():
    period = _range(date(2026, 3, 1), date(2026, 3, 1))
    statuses = ["scheduled", "rescheduled", "completed", "canceled"]
    body = analytics.appointment_stats(
        by_bucket={date(2026, 3, 1): {"scheduled": 1, "rescheduled": 0, "completed": 1, "canceled": 1}},
        by_type={"follow_up": 2, "": 1},
        reasons=[("Sick", 1)],
        statuses=statuses,
        period=period,
        interval="day",
    )
    assert body["total_appointments"] == 3
    assert [row["status"] for row in body["by_status"]] == statuses
    assert [row["percentage"] for row in body["by_status"]] == [33.4, 0.0, 33.3, 33.3]
    assert body["by_type"] == [
        {"type": "follow_up", "count": 2, "percentage": 66.7},
        {"type": "", "count": 1, "percentage": 33.3},
    ]
    assert body["by_interval"] == [
        {"interval": "2026-03-01", "scheduled": 1, "rescheduled": 0, "completed": 1, "canceled": 1}
    ]
    assert body["cancellation_reasons"] == [{"reason": "Sick", "count": 1, "percentage": 100.0}]
