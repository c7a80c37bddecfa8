"""core.parsers (JSON depth and NUL limits), core.time.parse_instant (range-checked ISO instants) and
core.pagination.parse_ascii_int: the general fixes of issue 10 finding 5."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
from rest_framework.exceptions import ParseError

from core.pagination import parse_ascii_int
from core.parsers import MAX_JSON_DEPTH, CheckedJSONParser, JsonHasNul, JsonTooDeep, loads_checked
from core.time import MAX_INSTANT, MIN_INSTANT, parse_instant


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_up_to_the_limit_parses_and_one_more_is_refused():
    assert loads_checked(nested(MAX_JSON_DEPTH)) is not None
    with pytest.raises(JsonTooDeep):
        loads_checked(nested(MAX_JSON_DEPTH + 1))
    with pytest.raises(JsonTooDeep):
        loads_checked('{"a":' * 5000 + "1" + "}" * 5000)


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = json.dumps({"text": "[" * 500 + "{" * 500, "list": [1, [2, [3]]]})
    assert loads_checked(text)["list"] == [1, [2, [3]]]


def test_many_siblings_are_not_depth():
    assert len(loads_checked(json.dumps([[i] for i in range(1000)]))) == 1000


@pytest.mark.parametrize("text", ['{"a": "x\\u0000"}', '{"a\\u0000": 1}', '["\\\\\\u0000"]'])
def test_nul_anywhere_in_a_string_or_key_is_refused(text):
    with pytest.raises(JsonHasNul):
        loads_checked(text)


def test_an_escaped_backslash_then_u0000_is_ordinary_text():
    assert loads_checked('["\\\\u0000"]') == ["\\u0000"]


def test_refusals_are_value_errors_like_malformed_json():
    with pytest.raises(ValueError):
        loads_checked(nested(100))


def test_the_drf_parser_answers_a_parse_error_and_parses_ordinary_json_as_before():
    parser = CheckedJSONParser()
    assert parser.parse(io.BytesIO(b'{"a": [1, 2.5, "x"]}')) == {"a": [1, 2.5, "x"]}
    with pytest.raises(ParseError, match="JSON parse error - nested deeper than 64 levels"):
        parser.parse(io.BytesIO(nested(65).encode()))
    with pytest.raises(ParseError, match="NUL"):
        parser.parse(io.BytesIO(b'{"a": "\\u0000"}'))
    with pytest.raises(ParseError, match="JSON parse error"):
        parser.parse(io.BytesIO(b'{"a": NaN}'))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2025-06-30", datetime(2025, 6, 30, tzinfo=UTC)),
        ("2025-06-30T12:00:00Z", datetime(2025, 6, 30, 12, tzinfo=UTC)),
        ("2025-06-30T12:00:00 02:00", datetime(2025, 6, 30, 10, tzinfo=UTC)),  # "+" arrived as a space
        ("2025-06-30T12:00:00-05:00", datetime(2025, 6, 30, 17, tzinfo=UTC)),
    ],
)
def test_parse_instant_reads_dates_and_datetimes_as_utc(text, expected):
    assert parse_instant(text) == expected


@pytest.mark.parametrize(
    "text",
    ["0001-01-01", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1899-12-31T23:59:59Z", "9000-01-01"],
)
def test_parse_instant_refuses_instants_outside_the_range(text):
    assert parse_instant(text) is None
    assert parse_instant(text if "T" in text else text + "T00:00:00Z", require_offset=True) is None


def test_parse_instant_range_bounds_are_inclusive_then_exclusive():
    assert parse_instant("1900-01-01") == MIN_INSTANT
    assert parse_instant("8999-12-31T23:59:59Z") < MAX_INSTANT


@pytest.mark.parametrize("text", ["2025-01-08T12:00:00", "2025-01-08", "2025-13-01T00:00Z", "", "soon"])
def test_parse_instant_with_require_offset_needs_a_real_datetime_with_an_offset(text):
    assert parse_instant(text, require_offset=True) is None


def test_parse_instant_with_require_offset_reads_z_and_offsets():
    assert parse_instant("2025-01-08T12:00Z", require_offset=True) == datetime(2025, 1, 8, 12, tzinfo=UTC)
    assert parse_instant("2025-01-08T12:00:00+0100", require_offset=True) == datetime(2025, 1, 8, 11, tzinfo=UTC)


@pytest.mark.parametrize("text, expected", [("0", 0), ("42", 42), ("", None), ("-1", None), ("²", None), ("٣", None)])
def test_parse_ascii_int_takes_ascii_digits_only(text, expected):
    assert parse_ascii_int(text) == expected
