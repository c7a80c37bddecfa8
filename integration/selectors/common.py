"""The clock and the SQL helpers the partner selectors share.

Tests pin the partner API's clock by replacing `utc_now` here: every selector, input parser and view of
the partner API reads the time through this module (`common.utc_now()`, `common.today_utc()`).
"""

from __future__ import annotations

from datetime import date

from django.db import connection
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
