"""The clock and the SQL helpers the partner selectors share.

Tests pin the partner API's clock by replacing `utc_now` here: every selector, input parser and view of
the partner API reads the time through this module (`common.utc_now()`, `common.today_utc()`).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import date, timedelta

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Case, CharField, F, Func, IntegerField, QuerySet, UUIDField, Value, When

from core.time import utc_now
from integration.models import CONSENTED, LEVEL_RANK, Therapist, TherapistClientLink

__all__ = ["utc_now", "today_utc"]


def today_utc() -> date:
    return utc_now().date()


def level_rank(field: str) -> Case:
    """A permission level column as its rank (BASIC 1, STANDARD 2, FULL 3) for comparisons in SQL."""
    return Case(
        *(When(**{field: level}, then=Value(rank)) for level, rank in LEVEL_RANK.items()),
        default=Value(0),
        output_field=IntegerField(),
    )


def iso_utc_sql(field: str) -> Func | F:
    """A timestamp column for core.time.iso_text: on PostgreSQL rendered by the database exactly as
    core.time.iso_utc renders it ("2025-06-30T12:00:00.000Z": UTC, milliseconds truncated, year unpadded
    like strftime's %Y), which saves the driver's datetime parsing and Python's formatting per row;
    elsewhere the column itself, formatted in Python."""
    if connection.vendor == "postgresql":
        return Func(
            F(field),
            template="""to_char(%(expressions)s AT TIME ZONE 'UTC', 'FMYYYY-MM-DD"T"HH24:MI:SS.MS"Z"')""",
            output_field=CharField(),
        )
    return F(field)


def uuid_text_sql(field: str) -> Func | F:
    """A uuid column as the text `str(uuid)` gives ("0b6a...-...", lowercase, hyphenated): on PostgreSQL
    cast by the database, which saves the driver's UUID object and Python's str() per row of a caseload
    (about 2 ms per 1,000 ids); elsewhere the column itself (a uuid.UUID; callers str() or compare alike
    within one database)."""
    if connection.vendor == "postgresql":
        return Func(F(field), template="%(expressions)s::text", output_field=CharField())
    return F(field)


def consented_links(therapist: Therapist) -> QuerySet[TherapistClientLink]:
    return TherapistClientLink.objects.filter(CONSENTED, therapist=therapist)


# --- Queries compiled once -----------------------------------------------------------------------------


class _Statement:
    __slots__ = ("sql", "params", "slots", "converters", "width")

    def __init__(self, sql: str, params: tuple, slots: tuple, converters: list, width: int | None) -> None:
        self.sql = sql
        self.params = params
        self.slots = slots  # ((parameter position, argument name), ...)
        self.converters = converters  # [(column position, [converter, ...], expression)]
        self.width = width  # columns to keep when the SQL selects more (for ordering), else None


def _probes(uuids: tuple[str, ...], dates: tuple[str, ...], which: int) -> dict:
    """Argument values that no real row has, distinct for every argument and for each of the two builds."""
    values: dict = {}
    for index, name in enumerate(uuids):
        values[name] = uuid.UUID(int=(0xA11E << 96) + index * 2 + which)
    for index, name in enumerate(dates):
        values[name] = date(1901, 1, 1) + timedelta(days=index * 2 + which)
    return values


class CompiledQuery:
    """A values_list queryset defined with the ORM, compiled to SQL once per process and database alias,
    then run with only its arguments bound: `build(**arguments)` returns the queryset, for arguments named
    in `uuids` (uuid.UUID values, e.g. a client's or therapist's id) and `dates` (datetime.date values).

    At first use the query is built for two sets of probe arguments and their SQL and parameters compared:
    the SQL must be identical and the parameters must differ exactly where an argument is, each as the
    database receives it (else ValueError: the definition takes something else that varies, e.g. the
    clock, or derives a value from an argument). `rows(**arguments)` gives what `list(build(**arguments))`
    gives, as tuples, after the same field converters (e.g. decryption of an encrypted column, SQLite's
    dates), without the ORM's per-request query building and compiling: for GET /clients on 1,000 clients
    about 10 ms of CPU, for GET /progress most of the selector's. Same SQL, same number of statements.
    """

    def __init__(self, build: Callable[..., QuerySet], *, uuids: tuple[str, ...] = (), dates: tuple[str, ...] = ()):
        self.build = build
        self.uuids = tuple(uuids)
        self.dates = tuple(dates)
        self._compiled: dict[tuple[str, str], _Statement] = {}
        self._lock = threading.Lock()

    def _prepare(self, name: str, value, database):
        if name in self.uuids:
            return _UUID_FIELD.get_db_prep_value(value, database)
        return database.ops.adapt_datefield_value(value)

    def _compile(self, alias: str) -> _Statement:
        database = connections[alias]
        builds = []
        for which in (0, 1):
            arguments = _probes(self.uuids, self.dates, which)
            compiler = self.build(**arguments).query.get_compiler(using=alias)
            sql, params = compiler.as_sql()
            prepared = {self._prepare(name, value, database): name for name, value in arguments.items()}
            builds.append((compiler, sql, tuple(params), prepared))
        (compiler, sql, params, prepared), (_, other_sql, other_params, other_prepared) = builds
        if sql != other_sql or len(params) != len(other_params):
            raise ValueError("CompiledQuery: the query's SQL depends on more than its arguments.")
        slots = []
        for position, (mine, theirs) in enumerate(zip(params, other_params, strict=True)):
            if mine == theirs:
                continue
            name = prepared.get(mine)
            if name is None or other_prepared.get(theirs) != name:
                raise ValueError("CompiledQuery: the query's parameters depend on more than its arguments.")
            slots.append((position, name))
        missing = set(self.uuids + self.dates) - {name for _, name in slots}
        if missing:
            raise ValueError(f"CompiledQuery: the query does not depend on {', '.join(sorted(missing))}.")
        # As compiler.results_iter: the first col_count columns (ordering may add more), then converters.
        width = compiler.col_count
        columns = [expression for expression, _, _ in compiler.select[:width]]
        converters = [
            (position, convs, expression) for position, (convs, expression) in compiler.get_converters(columns).items()
        ]
        return _Statement(sql, params, tuple(slots), converters, width if compiler.has_extra_select else None)

    def rows(self, *, using: str = DEFAULT_DB_ALIAS, **arguments) -> list[tuple]:
        """The query's rows for these arguments (a list of tuples, converted as the ORM converts them)."""
        database = connections[using]
        key = (using, database.vendor)
        statement = self._compiled.get(key)
        if statement is None:
            with self._lock:
                statement = self._compiled.get(key) or self._compile(using)
                self._compiled[key] = statement
        if set(arguments) != set(self.uuids + self.dates):
            raise TypeError(f"CompiledQuery.rows takes {', '.join(self.uuids + self.dates)}.")
        params = list(statement.params)
        for position, name in statement.slots:
            params[position] = self._prepare(name, arguments[name], database)
        with database.cursor() as cursor:
            cursor.execute(statement.sql, params)
            rows = cursor.fetchall()
        if statement.width is not None:
            rows = [row[: statement.width] for row in rows]
        if not statement.converters:
            return [tuple(row) for row in rows]
        converted = []
        for row in rows:
            row = list(row)
            for position, convs, expression in statement.converters:
                value = row[position]
                for converter in convs:
                    value = converter(value, expression, database)
                row[position] = value
            converted.append(tuple(row))
        return converted


_UUID_FIELD = UUIDField()


class TherapistQuery(CompiledQuery):
    """A CompiledQuery whose one argument is the therapist: `build(therapist)`, `rows(therapist)`."""

    def __init__(self, build: Callable[[Therapist], QuerySet]) -> None:
        self.therapist_build = build
        super().__init__(lambda therapist_id: build(Therapist(pk=therapist_id)), uuids=("therapist_id",))

    def rows(self, therapist: Therapist, *, using: str = DEFAULT_DB_ALIAS) -> list[tuple]:  # type: ignore[override]
        return super().rows(using=using, therapist_id=therapist.pk)
