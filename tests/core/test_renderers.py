"""core.renderers.FastJSONRenderer writes DRF's JSONRenderer bytes (orjson), falls back to DRF where
orjson refuses a value, and differs only where its module docstring says (tiny floats' notation: the
same number; NaN/Infinity: null instead of a 500)."""

from __future__ import annotations

import dataclasses
import decimal
import enum
import json
import math
import uuid
from collections import OrderedDict
from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest
from django.db import models
from django.utils.functional import lazy
from django.utils.safestring import mark_safe
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings
from rest_framework.utils.serializer_helpers import ReturnDict, ReturnList

from core.renderers import FastJSONRenderer


class Colour(models.TextChoices):
    RED = "red", "Red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int


def tricky_values() -> dict:
    """Fresh each call (a generator renders once)."""
    text = "".join(chr(i) for i in range(0x80)) + 'é€😀\x7f\u2028 \u2029\ufeff\ue000 "quoted" \\back\\'
    return {
        "text": text,
        "empty": ["", {}, [], ()],
        "ints": [0, -1, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1],
        "floats": [0.0, -0.0, 0.1, 1 / 3, 2.5, 1e-4, 123.456, 1e15, 1e16, 1e22, 1.7976931348623157e308, -7.25],
        "bools": [True, False, None],
        "decimal": [decimal.Decimal("1.10"), decimal.Decimal("-0.5"), decimal.Decimal("12345.678")],
        "datetimes": [
            datetime(2026, 2, 12, 15, 30, tzinfo=UTC),
            datetime(2026, 2, 12, 15, 30, 0, 123456, tzinfo=UTC),
            datetime(2026, 2, 12, 15, 30, 0, 999, tzinfo=timezone(timedelta(hours=-5))),
            datetime(2026, 2, 12, 15, 30),
        ],
        "date": date(2026, 2, 19),
        "time": time(9, 5, 7, 250000),
        "timedelta": timedelta(days=1, seconds=3, microseconds=5),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "lazy": lazy(lambda: "lazy text é", str)(),
        "safe": mark_safe("<b>safe</b>"),
        "choices": [Colour.RED, Level.HIGH],
        "set": {"only"},
        "generator": (n * n for n in range(3)),
        "bytes": b"raw bytes",
        "ordered": OrderedDict([("z", 1), ("a", 2)]),
        "drf": ReturnDict({"k": ReturnList([1, 2], serializer=None)}, serializer=None),
        "nested": {"deep": [[[{"x": [1, {"y": None}]}]]]},
        "unicode keys é": {"😀": "ok"},
    }


def both(data_factory, **kwargs):
    fast = FastJSONRenderer().render(data_factory(), **kwargs)
    drf = JSONRenderer().render(data_factory(), **kwargs)
    return fast, drf


def test_the_api_renders_with_it():
    assert api_settings.DEFAULT_RENDERER_CLASSES == [FastJSONRenderer]


def test_same_bytes_as_drf_on_tricky_values(monkeypatch):
    drf = JSONRenderer().render(tricky_values())
    # Written by orjson, not by the fallback.
    monkeypatch.setattr(JSONRenderer, "render", lambda *args, **kwargs: pytest.fail("fell back to DRF"))
    fast = FastJSONRenderer().render(tricky_values())
    assert fast == drf
    assert b"\\u2028" in fast and b"\\u2029" in fast and "😀".encode() in fast  # as DRF writes them


@pytest.mark.parametrize(
    "value",
    [
        {1: "int key", "b": 2},  # non-str keys: orjson refuses, DRF converts
        {True: 1, None: 2, 1.5: 3},
        [2**64, -(2**63) - 1, 2**100],  # beyond 64 bits
        "deep nesting",  # orjson refuses more than 254 levels
        {"float subclass": type("Celsius", (float,), {})(21.5)},
    ],
)
def test_what_orjson_refuses_is_rendered_by_drf(value):
    if value == "deep nesting":
        value = []
        for _ in range(300):
            value = [value]
    fast, drf = both(lambda: value)
    assert fast == drf


@pytest.mark.parametrize(
    "value,error",
    [
        ({"bad": "\ud800"}, UnicodeEncodeError),  # a lone surrogate
        ({"obj": object()}, TypeError),
        ({"point": Point(1)}, TypeError),  # DRF does not render dataclasses; orjson would
        ({"t": time(9, 0, tzinfo=UTC)}, ValueError),  # DRF refuses aware times
    ],
)
def test_what_drf_refuses_still_raises_the_same(value, error):
    with pytest.raises(error):
        JSONRenderer().render(value)
    with pytest.raises(error):
        FastJSONRenderer().render(value)


def test_indented_rendering_is_drfs():
    fast, drf = both(tricky_values, accepted_media_type="application/json; indent=4")
    assert fast == drf and b"\n    " in fast


def test_none_is_an_empty_body():
    assert FastJSONRenderer().render(None) == b"" == JSONRenderer().render(None)


def test_tiny_floats_are_the_same_numbers_in_another_notation():
    values = [1e-5, 1e-7, -3.936145966292681e-08, 6.389814116186164e-05, 5e-324]
    fast, drf = both(lambda: {"v": values})
    assert fast != drf  # the documented difference: notation only
    assert json.loads(fast) == json.loads(drf) == {"v": values}


def test_nan_and_infinity_are_null_where_drf_refuses_them():
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            JSONRenderer().render({"v": value})
        assert FastJSONRenderer().render({"v": value}) == b'{"v":null}'
