"""The clock and the SQL helpers the partner selectors share.

Tests pin the partner API's clock by replacing `utc_now` here: every selector, input parser and view of
the partner API reads the time through this module (`common.utc_now()`, `common.today_utc()`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Case, CharField, F, Func, IntegerField, QuerySet, Value, When

from core.compiled_query import CompiledQuery
from core.time import utc_now
from integration.models import CONSENTED, LEVEL_RANK, Therapist, TherapistClientLink

__all__ = ["CompiledQuery", "utc_now", "today_utc"]


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


# --- Queries compiled once (core.compiled_query) ------------------------------------------------------


class TherapistQuery(CompiledQuery):
    """A core.compiled_query.CompiledQuery whose one argument is the therapist: `therapist_build(therapist)`,
    `rows(therapist)` (the lists' definitions take the therapist, as consented_links does)."""

    def __init__(self, build: Callable[[Therapist], QuerySet]) -> None:
        self.therapist_build = build
        super().__init__(lambda therapist_id: build(Therapist(pk=therapist_id)), uuids=("therapist_id",))

    def rows(self, therapist: Therapist, *, using: str = DEFAULT_DB_ALIAS) -> list[tuple]:  # type: ignore[override]
        return super().rows(using=using, therapist_id=therapist.pk)
