"""The clock and the SQL helpers the partner selectors share.

Tests pin the partner API's clock by replacing `utc_now` here: every selector, input parser and view of
the partner API reads the time through this module (`common.utc_now()`, `common.today_utc()`).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import date

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Case, CharField, F, Func, IntegerField, QuerySet, Value, When

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


def consented_links(therapist: Therapist) -> QuerySet[TherapistClientLink]:
    return TherapistClientLink.objects.filter(CONSENTED, therapist=therapist)


# --- Per-therapist queries compiled once ---------------------------------------------------------------

# Two therapists that never exist: a query is built for each, and the parameters in which the two builds
# differ are the therapist's id (everything else must be identical, or the query is not cached).
_PROBE_IDS = (uuid.UUID("00000000-0000-4000-8000-00000000a11e"), uuid.UUID("00000000-0000-4000-8000-00000000b0b5"))


class _Statement:
    __slots__ = ("sql", "params", "therapist_positions", "converters", "width")

    def __init__(
        self, sql: str, params: tuple, therapist_positions: tuple[int, ...], converters: list, width: int | None
    ) -> None:
        self.sql = sql
        self.params = params
        self.therapist_positions = therapist_positions
        self.converters = converters  # [(column position, [converter, ...], expression)]
        self.width = width  # columns to keep when the SQL selects more (for ordering), else None


class TherapistQuery:
    """A values_list queryset for one therapist, defined with the ORM and compiled to SQL once per process
    and database alias, then run for any therapist with only the id bound.

    `build(therapist)` returns the queryset; it is compiled for two probe therapists and their SQL and
    parameters compared: they must differ only where the therapist's id is (the definition takes nothing
    else that varies, e.g. no clock), else ValueError at first use. Rows are what
    `build(therapist)` would give as tuples, after the same field converters (e.g. decryption of an
    encrypted column, SQLite's dates), without the ORM's per-request query building and compiling (on a
    1,000-client caseload about 10 ms of CPU for GET /clients). Same SQL, same statements count.
    """

    def __init__(self, build: Callable[[Therapist], QuerySet]) -> None:
        self.build = build
        self._compiled: dict[tuple[str, str], _Statement] = {}
        self._lock = threading.Lock()

    def _compile(self, alias: str) -> _Statement:
        database = connections[alias]
        builds = []
        for probe_id in _PROBE_IDS:
            queryset = self.build(Therapist(pk=probe_id))
            compiler = queryset.query.get_compiler(using=alias)
            sql, params = compiler.as_sql()
            builds.append((compiler, sql, tuple(params)))
        (compiler, sql, params), (_, other_sql, other_params) = builds
        if sql != other_sql or len(params) != len(other_params):
            raise ValueError("TherapistQuery: the query's SQL depends on more than the therapist.")
        prepared = [Therapist._meta.pk.get_db_prep_value(probe_id, database) for probe_id in _PROBE_IDS]
        positions = []
        for position, (mine, theirs) in enumerate(zip(params, other_params, strict=True)):
            if mine == theirs:
                continue
            if (mine, theirs) != tuple(prepared):
                raise ValueError("TherapistQuery: the query's parameters depend on more than the therapist.")
            positions.append(position)
        if not positions:
            raise ValueError("TherapistQuery: the query does not depend on the therapist.")
        # As compiler.results_iter: the first col_count columns (ordering may add more), then converters.
        width = compiler.col_count
        columns = [expression for expression, _, _ in compiler.select[:width]]
        converters = [
            (position, convs, expression)
            for position, (convs, expression) in compiler.get_converters(columns).items()
        ]
        return _Statement(sql, params, tuple(positions), converters, width if compiler.has_extra_select else None)

    def rows(self, therapist: Therapist, *, using: str = DEFAULT_DB_ALIAS) -> list[tuple]:
        """The query's rows for `therapist` (a list of tuples, converted as the ORM converts them)."""
        database = connections[using]
        key = (using, database.vendor)
        statement = self._compiled.get(key)
        if statement is None:
            with self._lock:
                statement = self._compiled.get(key) or self._compile(using)
                self._compiled[key] = statement
        params = list(statement.params)
        therapist_id = Therapist._meta.pk.get_db_prep_value(therapist.pk, database)
        for position in statement.therapist_positions:
            params[position] = therapist_id
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
