"""Output serializers that are both the response body and its OpenAPI schema, fast on long lists; and the
few fields every API's serializers share.

`OutputSerializer` is a DRF serializer: its declared fields are what drf-spectacular publishes, and the
body is what DRF's field-by-field rendering of those fields gives (`render_fields`, the reference). It
computes that body with a renderer compiled once per class from the same fields (a getter and a
converter per field, nested outputs and lists through their own renderers), because DRF's generic loop
costs several times the formatting itself on a 1,000-row list.

What the compiled renderer does, field by field, exactly as DRF does:
- the value is read by the field's `source`: an attribute, a dict key, a dotted path (objects and dicts
  alike), or `source="*"` (the instance itself); a missing attribute or key follows DRF's rules (the
  field's default, null when `allow_null`, left out when not required, an error otherwise);
- None renders as null; the marker `ABSENT` leaves the key out of the body (a section the caller may not
  see, which is not the same as null);
- the plain DRF fields (CharField, IntegerField, FloatField, BooleanField, UUIDField, ChoiceField,
  DateField, JSONField, ListField of those) convert with the builtin their `to_representation` amounts
  to; any other field is rendered by its own `to_representation`.

Differences from a plain DRF serializer, by design: rendering does not read the serializer's context (the
body depends on the instance only), and the fields are those the class declares (fixed per class).
`field_by_field_rendering()` switches every output to the reference rendering (tests use it to prove
the two give the same bytes).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from functools import partial
from operator import attrgetter, itemgetter

from django.db.models.manager import BaseManager
from rest_framework import ISO_8601, serializers
from rest_framework.fields import SkipField, get_attribute
from rest_framework.settings import api_settings

from core.time import iso_text, iso_utc, parse_instant

__all__ = [
    "ABSENT",
    "DATE_ONLY_INPUT_FORMATS",
    "InstantField",
    "IsoDateTimeField",
    "MidnightUtcField",
    "OutputListSerializer",
    "OutputSerializer",
    "StrictBooleanField",
    "StrictCharField",
    "StrictFloatField",
    "StrictIntegerField",
    "StrictSlugField",
    "field_by_field_rendering",
]

# Dates in request bodies: "2026-02-19" only (DRF's default would also take other ISO 8601 forms).
DATE_ONLY_INPUT_FORMATS = ["%Y-%m-%d"]


class _Absent:
    """The value of something the caller may not see: its key is left out of the body (not null)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT = _Absent()


# --- Shared fields ------------------------------------------------------------------------------------


class IsoDateTimeField(serializers.DateTimeField):
    """A timestamp as the APIs show it: UTC ISO 8601 with milliseconds and Z (core.time.iso_utc);
    text the database already rendered that way passes through (core.time.iso_text)."""

    def to_representation(self, value):
        return iso_text(value)


def midnight_utc(value: date) -> str:
    """A day as its midnight UTC: "2026-02-19T00:00:00.000Z"."""
    return iso_utc(datetime(value.year, value.month, value.day, tzinfo=UTC))


class MidnightUtcField(serializers.CharField):
    """A date shown as that day's midnight UTC ("2026-02-19T00:00:00.000Z"); a string in the schema."""

    def to_representation(self, value):
        return midnight_utc(value)


class StrictBooleanField(serializers.BooleanField):
    """Input: JSON true/false only (no "yes", 1, "on")."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictCharField(serializers.CharField):
    """Input: a JSON string only (DRF's CharField turns 0, 7.5 into "0", "7.5")."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictSlugField(serializers.SlugField):
    """Input: a JSON string that is a slug (DRF's SlugField takes 5 as "5")."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """Input: a JSON integer only (no "7", 7.5 or true)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """Input: a finite JSON number only (no "7.5", true, or 1e400, which JSON parsing makes infinite)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        if not math.isfinite(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class InstantField(serializers.DateTimeField):
    """Input: an ISO 8601 date-time with Z or an offset, within core.time's bounds (year 9999 would
    overflow start + duration into a 500)."""

    def to_internal_value(self, data):
        value = parse_instant(data, require_offset=True) if isinstance(data, str) else None
        if value is None:
            self.fail("invalid", format="an ISO 8601 date-time with a time zone, e.g. 2026-06-20T15:00:00Z")
        return value


# --- Converters: what a field's to_representation amounts to, chosen once per field ---------------------


def _same(value):
    return value


def _uuid(field) -> Callable | None:
    return str if field.uuid_format == "hex_verbose" else None


def _boolean(field) -> Callable:
    represent = field.to_representation
    return lambda value: value if value.__class__ is bool else represent(value)


def _choice(field) -> Callable:
    choices = field.choice_strings_to_values
    represent = field.to_representation
    return lambda value: choices.get(value, value) if value.__class__ is str else represent(value)


def _date(field) -> Callable | None:
    output_format = getattr(field, "format", api_settings.DATE_FORMAT)
    if output_format is None or output_format.lower() != ISO_8601:
        return None
    represent = field.to_representation
    return lambda value: value.isoformat() if value.__class__ is date else represent(value)


def _json(field) -> Callable | None:
    return None if field.binary else _same


_PLAIN: dict[type, Callable] = {
    serializers.CharField: lambda field: str,
    serializers.IntegerField: lambda field: int,
    serializers.FloatField: lambda field: float,
    serializers.BooleanField: _boolean,
    serializers.UUIDField: _uuid,
    serializers.ChoiceField: _choice,
    serializers.DateField: _date,
    serializers.JSONField: _json,
    IsoDateTimeField: lambda field: iso_text,
    MidnightUtcField: lambda field: midnight_utc,
}


def _converter(field) -> Callable:
    """value (not None) -> what `field.to_representation(value)` gives."""
    if isinstance(field, OutputListSerializer):
        return type(field.child).render_many
    if isinstance(field, OutputSerializer):
        return type(field).renderer()
    if type(field) is serializers.ListField:
        item = _converter(field.child)
        return lambda values: [None if value is None else item(value) for value in values]
    plain = _PLAIN.get(type(field))
    return (plain and plain(field)) or field.to_representation


def _object_getter(kind: type, attrs: tuple) -> Callable:
    """How to read `attrs` from an instance of `kind` (not a mapping), as DRF's get_attribute does."""
    if not attrs:  # source="*"
        return _same
    if len(attrs) == 1:
        declared = inspect.getattr_static(kind, attrs[0], None)
        if not (callable(declared) or isinstance(declared, (staticmethod, classmethod))):
            return attrgetter(attrs[0])
    # A dotted path, or a method that DRF calls: DRF's own lookup.
    return partial(get_attribute, attrs=attrs)


def _key_getter(attrs: tuple) -> Callable:
    if not attrs:
        return _same
    if len(attrs) == 1:
        return itemgetter(attrs[0])
    return partial(get_attribute, attrs=attrs)


_MAX_PLANS = 64  # instance classes remembered per output class (a few in practice)


def _compile(cls) -> Callable[[object], dict]:
    declared = {name: field for name, field in cls().fields.items() if not field.write_only}
    fields = [(name, tuple(field.source_attrs), _converter(field)) for name, field in declared.items()]
    by_key = [(name, _key_getter(attrs), convert) for name, attrs, convert in fields]
    plans: dict[type, list] = {dict: by_key}

    def plan_for(kind: type) -> list:
        if issubclass(kind, Mapping):
            plan = by_key
        else:
            plan = [(name, _object_getter(kind, attrs), convert) for name, attrs, convert in fields]
        if len(plans) < _MAX_PLANS:
            plans[kind] = plan
        return plan

    known_plan = plans.get

    def render(instance) -> dict:
        body = {}
        for name, get, convert in known_plan(instance.__class__) or plan_for(instance.__class__):
            try:
                value = get(instance)
            except (KeyError, AttributeError):  # missing: DRF's rules (default, null, left out, or raise)
                try:
                    value = declared[name].get_attribute(instance)
                except SkipField:
                    continue
            if value is ABSENT:
                continue
            body[name] = None if value is None else convert(value)
        return body

    return render


# --- The base -------------------------------------------------------------------------------------------

_field_by_field: ContextVar[bool] = ContextVar("field_by_field_rendering", default=False)


@contextmanager
def field_by_field_rendering() -> Iterator[None]:
    """Within the block, every OutputSerializer (and list of them, hand-written `render_many` included)
    renders through DRF's fields (`render_fields`) instead of its compiled renderer."""
    token = _field_by_field.set(True)
    try:
        yield
    finally:
        _field_by_field.reset(token)


# No class docstrings on the two bases: drf-spectacular describes a component by the first docstring in
# its class's MRO, so a base's docstring would become every output's description in the schema.


# `many=True` of an OutputSerializer: the child class's `render_many`.
class OutputListSerializer(serializers.ListSerializer):
    def to_representation(self, data):
        if _field_by_field.get():
            return super().to_representation(data)
        return type(self.child).render_many(data)


# The base of every response serializer (see the module docstring). Subclasses declare fields, as for any
# DRF serializer; a subclass may override `render_many` with a hand-written list renderer if it is
# measurably faster, with a test that it equals the field-by-field rendering.
class OutputSerializer(serializers.Serializer):
    class Meta:
        list_serializer_class = OutputListSerializer

    def to_representation(self, instance):
        if _field_by_field.get():
            return self.render_fields(instance)
        return type(self).renderer()(instance)

    @classmethod
    def renderer(cls) -> Callable[[object], dict]:
        """instance -> body, compiled on first use for this class."""
        render = cls.__dict__.get("_compiled_renderer")
        if render is None:
            render = _compile(cls)
            cls._compiled_renderer = render
        return render

    @classmethod
    def render_many(cls, items) -> list:
        if isinstance(items, BaseManager):
            items = items.all()
        render = cls.renderer()
        return [render(item) for item in items]

    def render_fields(self, instance) -> dict:
        """DRF's own field-by-field rendering of the declared fields, nested outputs included, ABSENT
        left out: the reference the compiled renderer must equal."""
        token = _field_by_field.set(True)
        try:
            body = {}
            for field in self._readable_fields:
                try:
                    value = field.get_attribute(instance)
                except SkipField:
                    continue
                if value is ABSENT:
                    continue
                body[field.field_name] = None if value is None else field.to_representation(value)
            return body
        finally:
            _field_by_field.reset(token)
