"""Exact row counts kept by the database, for a list's `total` without counting the list's rows (issue 15).

A counts table (a `CountParts` model) holds, for combinations of a few NOT NULL columns of a source table (say
a patient's organization, archived flag, status and language), parts `n` whose sum is how many source rows have
that combination. PostgreSQL statement triggers on the source table (`count_triggers`, declared in the source
model's Meta) insert, in the writer's own transaction, one part per combination a write changed: +k for the rows
an INSERT or UPDATE brought to it, -k for those a DELETE or UPDATE took from it. So the sum is exactly what
`COUNT(*)` would see, committed with the rows or rolled back with them, whatever the write path (a service, the
admin, a bulk update, a cascade, raw SQL, COPY). A TRUNCATE empties the parts.

Parts are only ever inserted by writers: no writer updates a shared counter row, so writers never queue on one
another or deadlock over counts (a counter row per combination did: a transaction that creates a patient and
then changes its language locks two rows in statement order, and another doing the opposite locks them the other
way round; tests/patients/test_kept_counts.py). An UPDATE that leaves every counted column as it was inserts
nothing. `compact` (core.tasks.compact_kept_counts, every few minutes) folds the parts of each combination that
has several into one, in one statement that deletes the parts it sees and inserts their sum: a part committed
meanwhile is not among them and stays, so the sums never change.

A count for a filter on those columns is then a sum over a small, indexed set of rows (`kept_total`), however
many source rows there are. A filter on anything else (a search term, a date range) is not kept: its caller
counts. SQLite has no triggers here: `kept_total` answers None there, and the caller counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import pgtrigger
from django.apps import apps
from django.db import connections, models, router

from core.kept_cursor import fetch_one
from core.statement_triggers import statement_triggers


class CountParts(models.Model):
    """A counts table: the model adds the counted columns (NOT NULL, named as in the source table) and an index
    that leads with the one every read filters on."""

    n = models.BigIntegerField()

    class Meta:
        abstract = True


def count_triggers(name: str, *, counts: type[CountParts]) -> list[pgtrigger.Trigger]:
    """The triggers that keep the parts of `counts` summing to the source table's rows grouped by the columns
    `counts` declares (named as in the source table). For the source model's `Meta.triggers`."""
    counts_table, columns = counts._meta.db_table, _counted_columns(counts)
    key = ", ".join(columns)
    # Fixed names written in model code, never input. New rows count +1, old rows -1; a combination whose rows
    # only changed in other columns nets 0 and gets no part.
    insert_parts = (
        f"INSERT INTO {counts_table} ({key}, n) "  # noqa: S608
        f"SELECT {key}, sum(d) FROM ({{rows}}) AS changed GROUP BY {key} HAVING sum(d) <> 0"
    )
    new_rows = f"SELECT {key}, 1 AS d FROM new_rows"  # noqa: S608
    old_rows = f"SELECT {key}, -1 AS d FROM old_rows"  # noqa: S608
    return statement_triggers(
        f"{name}_count",
        insert=insert_parts.format(rows=new_rows),
        update=insert_parts.format(rows=f"{new_rows} UNION ALL {old_rows}"),
        delete=insert_parts.format(rows=old_rows),
        truncate=f"DELETE FROM {counts_table}",  # noqa: S608
    )


def backfill_sql(*, source_table: str, counts_table: str, columns: Sequence[str]) -> list[str]:
    """For the migration that adds the triggers, after them in the same transaction: the source table locked
    against writes (a write that committed before is in the backfill, one after fires the triggers), then one part
    per combination of the rows already there."""
    key = ", ".join(columns)
    return [
        f"LOCK TABLE {source_table} IN SHARE ROW EXCLUSIVE MODE",
        f"DELETE FROM {counts_table}",  # noqa: S608
        f"INSERT INTO {counts_table} ({key}, n) SELECT {key}, count(*) FROM {source_table} GROUP BY {key}",  # noqa: S608
    ]


def _counted_columns(counts_model: type[CountParts]) -> list[str]:
    return [field.column for field in counts_model._meta.concrete_fields if not field.primary_key and field.name != "n"]


def kept_total(counts_model: type[CountParts], **equal) -> int | None:
    """How many source rows have these values (keyword: a counted field of `counts_model`; a foreign key takes
    the instance or its id; the fields not given: any value): one small statement, on the connection's kept
    cursor (the ORM would spend longer building it than the database running it). None where no triggers keep
    the parts (not PostgreSQL): the caller counts."""
    conn = connections[router.db_for_read(counts_model)]
    if conn.vendor != "postgresql":
        return None
    meta = counts_model._meta
    where, params = [], []
    for name, value in sorted(equal.items()):
        field = meta.get_field(name)  # FieldDoesNotExist for anything else: names come from code
        where.append(f'"{field.column}" = %s')
        params.append(field.get_db_prep_value(value.pk if isinstance(value, models.Model) else value, conn))
    sql = f'SELECT COALESCE(sum("n"), 0) FROM "{meta.db_table}"'  # noqa: S608
    if where:
        sql += " WHERE " + " AND ".join(where)
    return int(fetch_one(conn, sql, params)[0])


def compact(counts_model: type[CountParts]) -> int:
    """Fold the parts of each combination that has more than one into one (none where they sum to 0), in one
    statement; the number of parts removed. A combination with a single part is not touched, so a compaction
    costs what was written since the last one. Sums are unchanged at every moment: readers see the parts before
    or after, and a part a writer commits meanwhile is not among those deleted. PostgreSQL only (0 elsewhere)."""
    conn = connections[router.db_for_write(counts_model)]
    if conn.vendor != "postgresql":
        return 0
    table, key = counts_model._meta.db_table, ", ".join(f'"{column}"' for column in _counted_columns(counts_model))
    with conn.cursor() as cursor:
        cursor.execute(
            f'WITH gone AS (DELETE FROM "{table}" WHERE ({key}) IN '  # noqa: S608
            f'(SELECT {key} FROM "{table}" GROUP BY {key} HAVING count(*) > 1) RETURNING {key}, "n"), '
            f'kept AS (INSERT INTO "{table}" ({key}, "n") SELECT {key}, sum("n") FROM gone GROUP BY {key} '
            f'HAVING sum("n") <> 0 RETURNING 1) '
            "SELECT (SELECT count(*) FROM gone) - (SELECT count(*) FROM kept)"
        )
        return int(cursor.fetchone()[0])


def counts_models() -> list[type[CountParts]]:
    return [model for model in apps.get_models() if issubclass(model, CountParts)]


def compact_all() -> dict[str, int]:
    """`compact` for every counts table: label -> parts removed."""
    return {model._meta.label: compact(model) for model in counts_models()}
