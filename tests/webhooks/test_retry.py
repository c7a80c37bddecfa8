"""The retry schedules, exactly as docs/webhooks.md states them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from webhooks import retry


def test_loverescue_schedule():
    assert retry.policy_for("loverescue").max_attempts == 5
    assert retry.LOVERESCUE.offsets() == [
        timedelta(0),
        timedelta(minutes=1),
        timedelta(minutes=11),
        timedelta(hours=1, minutes=51),
        timedelta(hours=18, minutes=31),
    ]
    assert retry.LOVERESCUE.offsets()[-1] < timedelta(hours=24)


def test_standard_schedule_for_mark_and_standard():
    assert retry.policy_for("mark") is retry.policy_for("standard") is retry.STANDARD
    assert retry.STANDARD.max_attempts == 10
    assert retry.STANDARD.delays[:7] == (
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
        timedelta(hours=10),
    )
    assert retry.STANDARD.offsets()[-1] == timedelta(hours=65, minutes=35, seconds=5)  # about 3 days


def test_jitter_stays_within_the_loverescue_window(monkeypatch):
    monkeypatch.setattr(retry, "JITTER_FRACTION", 0.1)
    monkeypatch.setattr(retry._random, "random", lambda: 1.0)  # the largest jitter
    now = first = datetime(2026, 1, 1, tzinfo=UTC)
    for count in range(1, 5):
        now = retry.LOVERESCUE.next_attempt_at(attempt_count=count, now=now, first_attempt_at=first)
    assert now - first == timedelta(minutes=1111 * 1.1)
    assert now - first < timedelta(hours=24)
    assert retry.LOVERESCUE.next_attempt_at(attempt_count=5, now=now, first_attempt_at=first) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", timedelta(seconds=120)),
        ("0", timedelta(0)),
        ("Thu, 01 Jan 2026 00:05:00 GMT", timedelta(minutes=5)),
        ("Wed, 31 Dec 2025 00:00:00 GMT", timedelta(0)),
        ("999999", retry.RETRY_AFTER_CAP),
        ("soon", None),
        ("\u00b2", None),  # a unicode digit: str.isdigit() says yes, int() says no
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value, expected):
    assert retry.parse_retry_after(value, now=datetime(2026, 1, 1, tzinfo=UTC)) == expected
