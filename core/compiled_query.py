"""Queries defined with the ORM, compiled to SQL once per process and database alias.

A hot read whose ORM definition never changes but its arguments (a therapist's id, a day, an API key's id)
spends more CPU building and compiling the queryset than the database spends running it. `CompiledQuery`
keeps the definition in the ORM (scoping, consent filters and field types stay the same code), compiles it
once, and then only binds the arguments and turns the rows into what the queryset would have given:

    _ASSESSMENTS = CompiledQuery(
        lambda client_id: Assessment.objects.filter(client_id=client_id).values_list("type", "score"),
        uuids=("client_id",),
    )
    _ASSESSMENTS.rows(client_id=client.pk)  # == list(_ASSESSMENTS.build(client_id=client.pk))

Arguments are named by type: `uuids` (uuid.UUID, or what UUIDField accepts), `dates` (datetime.date, as
DateField accepts) and `strs` (str, bound as given). The queryset may be a `values_list` (rows are tuples),
a `values_list(flat=True)` (single values) or a model queryset, with `select_related` and annotations (rows
are model instances made as the ORM makes them: `Model.from_db`, the related objects cached). Every column
goes through the ORM's converters for its expression (decryption of encrypted fields, SQLite's dates and
decimals), so the rows are exactly the ORM's.

The safety check: at first use per alias the definition is built for two sets of probe arguments (values
no real row has, distinct per argument and per build) and compiled. The SQL must be identical and the
parameters must differ exactly where an argument is bound, as the ORM prepares it for the database;
otherwise ValueError. That refuses a definition that reads anything else that varies (the clock, a
counter), derives a value from an argument (`__startswith`, `__icontains`, a date compared with a
timestamp column), casts it through another field type (a str argument against an encrypted or blind-index
column) or does not use an argument at all. What probes cannot see: a definition must not branch in Python
on an argument's value (`if key_id: ...`); keep definitions a single expression of their arguments.
On PostgreSQL the compiled statement runs on the connection's kept cursor (core.kept_cursor): its arguments
bound by the server and, unless settings.DB_PREPARED_STATEMENTS is off, the statement prepared once per
connection, so the database parses and plans it once too.
Not supported (ValueError): prefetch_related, select_for_update, related-manager querysets, values()
dicts, named rows, composite fields, a queryset pinned to another database.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import DateField, QuerySet, UUIDField
from django.db.models.query import FlatValuesListIterable, ModelIterable, ValuesListIterable, get_related_populators

from core.kept_cursor import fetch_all

__all__ = ["CompiledQuery"]

_UUID_FIELD = UUIDField()
_DATE_FIELD = DateField()

TUPLES, FLAT, MODELS = "tuples", "flat", "models"
_KINDS = {ValuesListIterable: TUPLES, FlatValuesListIterable: FLAT, ModelIterable: MODELS}


def _prepare_uuid(value, database):
    return _UUID_FIELD.get_db_prep_value(value, database)


def _prepare_date(value, database):
    return _DATE_FIELD.get_db_prep_value(value, database)


def _prepare_str(value, database):
    if not isinstance(value, str):
        raise TypeError(f"CompiledQuery: a str argument was given {type(value).__name__}.")
    return value


def _probe_uuid(index: int, which: int) -> uuid.UUID:
    return uuid.UUID(int=(0xA11E << 96) + index * 2 + which)


def _probe_date(index: int, which: int) -> date:
    return date(1901, 1, 1) + timedelta(days=index * 2 + which)


def _probe_str(index: int, which: int) -> str:
    # Mixed case, outer spaces, a non-ASCII letter, a quote and a percent sign: a definition that lowers,
    # strips, normalizes or escapes its argument in Python binds another value, and is refused.
    return f" Compiled-Query-Probe-{index}-{which} \u00c9'% "


class _Statement:
    """One definition compiled for one database alias."""

    __slots__ = (
        "sql",
        "params",
        "slots",
        "converters",
        "width",
        "kind",
        "model",
        "init_list",
        "start",
        "end",
        "related",
        "annotations",
    )

    def __init__(self, sql: str, params: tuple, slots: tuple, converters: list, width: int | None, kind: str):
        self.sql = sql
        self.params = params
        self.slots = slots  # ((parameter position, argument name, preparer), ...)
        self.converters = converters  # [(column position, [converter, ...], expression)]
        self.width = width  # columns to keep when the SQL selects more (for ordering), else None
        self.kind = kind
        # MODELS: the model, the attnames of its columns and where they are, select_related's populators, and
        # the annotations' (attribute, column position).
        self.model = None
        self.init_list: list[str] = []
        self.start = self.end = 0
        self.related: list = []
        self.annotations: list[tuple[str, int]] = []


class CompiledQuery:
    """An ORM definition `build(**arguments) -> QuerySet`, compiled once per process and database alias.

    `rows(**arguments)` gives what `list(build(**arguments))` gives (tuples, single values or model
    instances), `one(**arguments)` its first row or None; same SQL, one statement, no queryset built.
    """

    def __init__(
        self,
        build: Callable[..., QuerySet],
        *,
        uuids: tuple[str, ...] = (),
        dates: tuple[str, ...] = (),
        strs: tuple[str, ...] = (),
    ) -> None:
        self.build = build
        self.uuids, self.dates, self.strs = tuple(uuids), tuple(dates), tuple(strs)
        self.arguments = self.uuids + self.dates + self.strs
        if len(set(self.arguments)) != len(self.arguments):
            raise ValueError("CompiledQuery: an argument is named twice.")
        self._names = frozenset(self.arguments)
        self._preparers: dict[str, Callable] = {}
        self._probers: dict[str, Callable[[int, int], Any]] = {}
        for names, preparer, prober in (
            (self.uuids, _prepare_uuid, _probe_uuid),
            (self.dates, _prepare_date, _probe_date),
            (self.strs, _prepare_str, _probe_str),
        ):
            for name in names:
                self._preparers[name] = preparer
                self._probers[name] = prober
        self._compiled: dict[tuple[str, str], _Statement] = {}
        self._lock = threading.Lock()

    def _probes(self, which: int) -> dict:
        """Argument values that no real row has, distinct for every argument and for each of the two builds."""
        return {name: self._probers[name](index, which) for index, name in enumerate(self.arguments)}

    def _compile(self, alias: str) -> _Statement:
        database = connections[alias]
        builds = []
        for which in (0, 1):
            arguments = self._probes(which)
            queryset = self.build(**arguments)
            if not isinstance(queryset, QuerySet):
                raise ValueError("CompiledQuery: the definition must return a QuerySet.")
            compiler = queryset.query.get_compiler(using=alias)
            try:
                sql, params = compiler.as_sql()
            except EmptyResultSet:
                raise ValueError("CompiledQuery: the query can never have rows.") from None
            prepared = {self._preparers[name](value, database): name for name, value in arguments.items()}
            builds.append((queryset, compiler, sql, tuple(params), prepared))
        (queryset, compiler, sql, params, prepared), (_, _, other_sql, other_params, other_prepared) = builds
        if sql != other_sql or len(params) != len(other_params):
            raise ValueError("CompiledQuery: the query's SQL depends on more than its arguments.")
        slots = []
        for position, (mine, theirs) in enumerate(zip(params, other_params, strict=True)):
            if mine == theirs:
                continue
            name = prepared.get(mine)
            if name is None or other_prepared.get(theirs) != name:
                raise ValueError("CompiledQuery: the query's parameters depend on more than its arguments.")
            slots.append((position, name, self._preparers[name]))
        missing = self._names - {name for _, name, _ in slots}
        if missing:
            raise ValueError(f"CompiledQuery: the query does not depend on {', '.join(sorted(missing))}.")
        kind = self._kind(queryset, alias)
        # As compiler.results_iter: the first col_count columns (ordering may add more), then converters.
        width = compiler.col_count
        columns = [expression for expression, _, _ in compiler.select[:width]]
        if compiler.has_composite_fields(columns):
            raise ValueError("CompiledQuery: composite fields are not supported.")
        converters = [
            (position, convs, expression) for position, (convs, expression) in compiler.get_converters(columns).items()
        ]
        statement = _Statement(
            sql, params, tuple(slots), converters, width if compiler.has_extra_select else None, kind
        )
        if kind == MODELS:
            # As ModelIterable: the model's columns, then select_related's populators, then annotations.
            klass_info, select = compiler.klass_info, compiler.select
            start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
            statement.model = klass_info["model"]
            statement.init_list = [column[0].target.attname for column in select[start:end]]
            statement.start, statement.end = start, end
            statement.related = get_related_populators(klass_info, select, alias)
            statement.annotations = list((compiler.annotation_col_map or {}).items())
        return statement

    @staticmethod
    def _kind(queryset: QuerySet, alias: str) -> str:
        kind = _KINDS.get(queryset._iterable_class)
        if kind is None:
            raise ValueError("CompiledQuery: rows are tuples (values_list), values (flat=True) or model instances.")
        if queryset._prefetch_related_lookups or queryset._known_related_objects:
            raise ValueError("CompiledQuery: prefetch_related and related-manager querysets are not supported.")
        if queryset.query.select_for_update:
            raise ValueError("CompiledQuery: select_for_update is not supported.")
        if queryset._db is not None and queryset._db != alias:
            raise ValueError("CompiledQuery: the definition names another database.")
        return kind

    def _statement(self, using: str, database) -> _Statement:
        key = (using, database.vendor)
        statement = self._compiled.get(key)
        if statement is None:
            with self._lock:
                statement = self._compiled.get(key) or self._compile(using)
                self._compiled[key] = statement
        return statement

    def rows(self, *, using: str = DEFAULT_DB_ALIAS, **arguments) -> list:
        """The query's rows for these arguments, as the ORM gives them (converted by the same converters)."""
        if arguments.keys() != self._names:
            raise TypeError(f"CompiledQuery.rows takes {', '.join(self.arguments)}.")
        database = connections[using]
        statement = self._statement(using, database)
        params = list(statement.params)
        for position, name, prepare in statement.slots:
            params[position] = prepare(arguments[name], database)
        # Compiled once, so the same text on every call: on PostgreSQL bound by the server and prepared once
        # per connection (core.kept_cursor), parsed and planned once instead of on every read.
        rows = fetch_all(database, statement.sql, params)
        if statement.width is not None:
            rows = [row[: statement.width] for row in rows]
        kind, converters = statement.kind, statement.converters
        if converters:
            converted = []
            append = converted.append
            as_tuples = kind == TUPLES
            for row in rows:
                row = list(row)
                for position, convs, expression in converters:
                    value = row[position]
                    for converter in convs:
                        value = converter(value, expression, database)
                    row[position] = value
                append(tuple(row) if as_tuples else row)
            rows = converted
        elif kind == TUPLES and rows and type(rows[0]) is not tuple:
            rows = [tuple(row) for row in rows]
        if kind == TUPLES:
            return rows
        if kind == FLAT:
            return [row[0] for row in rows]
        return self._instances(statement, rows, using)

    @staticmethod
    def _instances(statement: _Statement, rows: list, using: str) -> list:
        model, init_list, related, annotations = (
            statement.model,
            statement.init_list,
            statement.related,
            statement.annotations,
        )
        start, end = statement.start, statement.end
        instances = []
        for row in rows:
            instance = model.from_db(using, init_list, row[start:end])
            for populator in related:
                populator.populate(row, instance)
            for attribute, position in annotations:
                setattr(instance, attribute, row[position])
            instances.append(instance)
        return instances

    def one(self, *, using: str = DEFAULT_DB_ALIAS, **arguments):
        """The first row (put `[:1]` in the definition to fetch no more), or None."""
        rows = self.rows(using=using, **arguments)
        return rows[0] if rows else None
