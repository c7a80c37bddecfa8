"""core.serializers on its own: the compiled renderer of OutputSerializer gives exactly DRF's field-by-field
rendering (`render_fields`) for nested outputs, lists, source paths, dicts and objects, None, ABSENT and
missing values; the shared fields render and parse as documented; and the equality checks can fail."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, NamedTuple
from unittest import mock

import pytest
from drf_spectacular.plumbing import get_doc
from rest_framework import serializers

from core import serializers as core_serializers
from core.serializers import (
    ABSENT,
    IsoDateTimeField,
    MidnightUtcField,
    OutputSerializer,
    StrictBooleanField,
    StrictIntegerField,
    field_by_field_rendering,
)

PERSON_ID = uuid.UUID("6f1c3a52-8d0e-4a57-9a43-2f2b7d1e0c11")
WHEN = datetime(2026, 2, 12, 9, 30, 5, 123999, tzinfo=UTC)


# --- Outputs and the rows they render ---------------------------------------------------------------


class PersonOutput(OutputSerializer):
    id = serializers.UUIDField()
    firstName = serializers.CharField(source="first_name")
    nickname = serializers.CharField(required=False)  # a missing value is left out (not required)


class EntryOutput(OutputSerializer):
    day = serializers.DateField()
    score = serializers.IntegerField()
    ratio = serializers.FloatField(allow_null=True)


class ReportOutput(OutputSerializer):
    id = serializers.UUIDField()
    person = PersonOutput()
    entries = EntryOutput(many=True)
    tags = serializers.ListField(child=serializers.CharField())
    counts = serializers.ListField(child=serializers.IntegerField())
    createdAt = IsoDateTimeField(source="created_at")
    dueDate = MidnightUtcField(source="due_date", allow_null=True)
    summary = serializers.CharField(source="content.summary")  # a path into a dict held by the row
    authorName = serializers.CharField(source="person.first_name", allow_null=True)  # a path through an object
    level = serializers.ChoiceField(choices=["BASIC", "FULL"])
    active = serializers.BooleanField()
    extra = serializers.JSONField(required=False, help_text="ABSENT: left out")
    everything = EntryOutput(source="*", required=False)  # the row itself


@dataclass
class Person:
    id: uuid.UUID
    first_name: str


class Entry(NamedTuple):
    day: date
    score: int
    ratio: float | None


@dataclass
class Report:
    id: uuid.UUID
    person: Person | None
    entries: list
    tags: list
    counts: list
    created_at: datetime | str
    due_date: date | None
    content: dict
    level: str
    active: bool
    extra: Any = ABSENT
    day: date = date(2026, 2, 1)
    score: int = 3
    ratio: float | None = None


def report(**changes) -> Report:
    values = {
        "id": PERSON_ID,
        "person": Person(PERSON_ID, "Ana"),
        "entries": [Entry(date(2026, 2, 10), 7, 6.3), Entry(date(2026, 2, 11), 0, None)],
        "tags": ["a", "b"],
        "counts": [1, None, 3],
        "created_at": WHEN,
        "due_date": date(2026, 2, 19),
        "content": {"summary": "Stable week"},
        "level": "FULL",
        "active": True,
    }
    return Report(**{**values, **changes})


def both_ways(output_class, instance) -> tuple[dict, dict]:
    compiled = output_class(instance).data
    reference = output_class().render_fields(instance)
    return compiled, reference


def assert_same_json(compiled, reference) -> None:
    # Python equality says 1 == 1.0 == True; the JSON text does not.
    assert json.dumps(compiled) == json.dumps(reference)


# --- The compiled renderer equals DRF's field-by-field rendering --------------------------------------------


def test_nested_lists_paths_and_fields_render_exactly_as_declared():
    compiled, reference = both_ways(ReportOutput, report())
    assert compiled == {
        "id": str(PERSON_ID),
        "person": {"id": str(PERSON_ID), "firstName": "Ana"},
        "entries": [
            {"day": "2026-02-10", "score": 7, "ratio": 6.3},
            {"day": "2026-02-11", "score": 0, "ratio": None},
        ],
        "tags": ["a", "b"],
        "counts": [1, None, 3],
        "createdAt": "2026-02-12T09:30:05.123Z",
        "dueDate": "2026-02-19T00:00:00.000Z",
        "summary": "Stable week",
        "authorName": "Ana",
        "level": "FULL",
        "active": True,
        "everything": {"day": "2026-02-01", "score": 3, "ratio": None},
    }
    assert list(compiled) == list(reference)  # key order is visible in the JSON
    assert_same_json(compiled, reference)


def test_absent_leaves_the_key_out_and_none_renders_null():
    row = report(extra={"k": [1, 2]}, due_date=None, person=None, entries=[])
    compiled, reference = both_ways(ReportOutput, row)
    assert compiled["extra"] == {"k": [1, 2]} and compiled["dueDate"] is None
    assert compiled["person"] is None and compiled["authorName"] is None  # a path through None: allow_null
    assert compiled["entries"] == []
    assert_same_json(compiled, reference)

    compiled, reference = both_ways(ReportOutput, report())  # extra is ABSENT
    assert "extra" not in compiled and "extra" not in reference
    assert not ABSENT and repr(ABSENT) == "ABSENT"


def test_dicts_and_objects_render_alike():
    as_object = report()
    as_dict = {
        **as_object.__dict__,
        "person": {"id": PERSON_ID, "first_name": "Ana"},
        "entries": [entry._asdict() for entry in as_object.entries],
    }
    del as_dict["extra"]  # a dict without the key: left out, like ABSENT (not required)
    compiled, reference = both_ways(ReportOutput, as_dict)
    assert compiled == ReportOutput(as_object).data
    assert_same_json(compiled, reference)


def test_missing_values_follow_drfs_rules():
    class Output(OutputSerializer):
        required = serializers.CharField()
        nullable = serializers.CharField(allow_null=True)
        optional = serializers.CharField(required=False)
        defaulted = serializers.CharField(required=False, default="none")

    compiled, reference = both_ways(Output, {"required": "x"})
    assert compiled == reference == {"required": "x", "nullable": None, "defaulted": "none"}
    with pytest.raises(AttributeError):
        Output(Person(PERSON_ID, "Ana")).data  # noqa: B018 (a required value is missing: an error)
    with pytest.raises(AttributeError):
        Output().render_fields(Person(PERSON_ID, "Ana"))


def test_methods_and_properties_are_read_as_drf_reads_them():
    class Row:
        def __init__(self, first, last):
            self.first, self.last = first, last

        def full_name(self):
            return f"{self.first} {self.last}"

        @property
        def initials(self):
            return self.first[0] + self.last[0]

    class Output(OutputSerializer):
        name = serializers.CharField(source="full_name")
        initials = serializers.CharField()

    compiled, reference = both_ways(Output, Row("Ana", "Lima"))
    assert compiled == reference == {"name": "Ana Lima", "initials": "AL"}


def test_plain_fields_convert_exactly_as_their_to_representation():
    class Level(serializers.ChoiceField):
        pass

    class Output(OutputSerializer):
        flag = serializers.BooleanField()
        text_flag = serializers.BooleanField(source="text")  # "false" is False in DRF, not bool("false")
        number_choice = serializers.ChoiceField(choices=[1, 2], source="choice")  # "1" renders as 1
        plain_choice = Level(choices=["a"])
        hex_id = serializers.UUIDField(format="hex", source="id")
        day_text = serializers.DateField(source="day")
        amount = serializers.DecimalField(max_digits=5, decimal_places=2)
        binary = serializers.JSONField(binary=True, source="blob")
        count = serializers.IntegerField(source="float_count")
        real = serializers.FloatField(source="whole")

    row = {
        "flag": 1,
        "text": "false",
        "choice": "1",
        "plain_choice": "a",
        "id": PERSON_ID,
        "day": "2026-02-10",
        "amount": Decimal("15.5"),
        "blob": {"a": 1},
        "float_count": 7.9,
        "whole": 2,
    }
    compiled, reference = both_ways(Output, row)
    assert compiled == {
        "flag": True,
        "text_flag": False,
        "number_choice": 1,
        "plain_choice": "a",
        "hex_id": PERSON_ID.hex,
        "day_text": "2026-02-10",
        "amount": "15.50",
        "binary": b'{"a": 1}',
        "count": 7,
        "real": 2.0,
    }
    assert compiled == reference
    assert [type(value) for value in compiled.values()] == [type(value) for value in reference.values()]


def test_render_many_and_many_true_render_lists():
    entries = [Entry(date(2026, 2, 10), 7, 6.3), Entry(date(2026, 2, 11), 1, None)]
    rendered = EntryOutput.render_many(entries)
    assert rendered == EntryOutput(entries, many=True).data == [EntryOutput(entry).data for entry in entries]
    assert EntryOutput.render_many(iter(entries)) == rendered  # any iterable
    with field_by_field_rendering():
        assert EntryOutput(entries, many=True).data == rendered


def test_the_renderer_is_compiled_once_per_class_not_per_response():
    assert ReportOutput.renderer() is ReportOutput.renderer()
    ReportOutput(report()).data  # noqa: B018 (compiled by now)
    with mock.patch.object(core_serializers, "_compile", side_effect=AssertionError("compiled again")):
        with mock.patch.object(serializers.Serializer, "get_fields", side_effect=AssertionError("fields built")):
            assert ReportOutput(report()).data["summary"] == "Stable week"
            assert EntryOutput(report().entries, many=True).data[0]["score"] == 7


def test_a_subclass_compiles_its_own_fields():
    class Wider(PersonOutput):
        lastName = serializers.CharField(source="first_name")

    assert list(PersonOutput(Person(PERSON_ID, "Ana")).data) == ["id", "firstName"]
    assert list(Wider(Person(PERSON_ID, "Ana")).data) == ["id", "firstName", "lastName"]


# --- The checks can fail ----------------------------------------------------------------------------------


def test_a_hand_written_render_many_is_checked_against_the_fields():
    class Bad(EntryOutput):
        @classmethod
        def render_many(cls, items):
            return [{"day": str(item.day), "score": float(item.score)} for item in items]  # ratio lost, 7.0

    class Holder(OutputSerializer):
        entries = Bad(many=True)

    row = {"entries": [Entry(date(2026, 2, 10), 7, None)]}
    compiled = Holder(row).data
    with field_by_field_rendering():
        reference = Holder(row).data
    assert compiled != reference
    assert reference == Holder().render_fields(row) == {"entries": [{"day": "2026-02-10", "score": 7, "ratio": None}]}


def test_a_wrong_converter_would_be_caught(monkeypatch):
    monkeypatch.setitem(core_serializers._PLAIN, serializers.IntegerField, lambda field: float)

    class Fresh(OutputSerializer):  # compiled under the wrong converter
        score = serializers.IntegerField()

    compiled, reference = both_ways(Fresh, {"score": 7})
    assert compiled == reference  # 7.0 == 7 in Python...
    with pytest.raises(AssertionError):
        assert_same_json(compiled, reference)  # ...but not in the JSON


# --- Shared fields ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, text",
    [
        (datetime(2026, 2, 12, 9, 30, 0, tzinfo=UTC), "2026-02-12T09:30:00.000Z"),
        (datetime(2026, 2, 12, 9, 30, 59, 999999, tzinfo=UTC), "2026-02-12T09:30:59.999Z"),  # truncated
        (datetime(2026, 2, 12, 10, 30, tzinfo=timezone(timedelta(hours=1))), "2026-02-12T09:30:00.000Z"),
        (datetime(2026, 2, 12, 9, 30), "2026-02-12T09:30:00.000Z"),  # naive is UTC
        ("2026-02-12T09:30:00.000Z", "2026-02-12T09:30:00.000Z"),  # rendered by the database
    ],
)
def test_iso_datetime_field(value, text):
    assert IsoDateTimeField().to_representation(value) == text
    assert both_ways(ReportOutput, report(created_at=value))[0]["createdAt"] == text


def test_midnight_utc_field():
    assert MidnightUtcField().to_representation(date(2026, 2, 19)) == "2026-02-19T00:00:00.000Z"


@pytest.mark.parametrize("value, ok", [(True, True), (False, True), ("true", False), (1, False), ("on", False)])
def test_strict_boolean_field(value, ok):
    field = StrictBooleanField()
    if ok:
        assert field.run_validation(value) is value
    else:
        with pytest.raises(serializers.ValidationError):
            field.run_validation(value)


@pytest.mark.parametrize("value, ok", [(7, True), (0, True), ("7", False), (7.5, False), (7.0, False), (True, False)])
def test_strict_integer_field(value, ok):
    field = StrictIntegerField(min_value=0)
    if ok:
        assert field.run_validation(value) == value
    else:
        with pytest.raises(serializers.ValidationError):
            field.run_validation(value)


def test_the_bases_lend_no_description_to_the_schema():
    # drf-spectacular takes the first docstring of a component's MRO as its description.
    assert get_doc(PersonOutput) == ""
    assert get_doc(EntryOutput(many=True).__class__) == ""
