"""Reads of the audit tables: the CSV export snapshot (flat rows, one query per chunk, no per-row lookups)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from django.db.models import Count, Max, QuerySet

EXPORT_CHUNK = 2000


@dataclass(frozen=True)
class ExportSnapshot:
    """The rows an export covers, fixed when it starts: rows inserted while it streams are not in it, so
    `rows` (what the audit event records) is what the file holds."""

    queryset: QuerySet
    rows: int


def audit_export_snapshot(queryset: QuerySet) -> ExportSnapshot:
    """One aggregate query: how many rows, and the highest id the export may include."""
    totals = queryset.order_by().aggregate(rows=Count("pk"), last_pk=Max("pk"))
    if not totals["rows"]:
        return ExportSnapshot(queryset=queryset.none(), rows=0)
    return ExportSnapshot(queryset=queryset.filter(pk__lte=totals["last_pk"]), rows=totals["rows"])


def audit_export_rows(snapshot: ExportSnapshot, fields: Sequence[str]) -> Iterator[tuple]:
    """Plain value tuples in newest-first order, read in chunks (a server-side cursor on PostgreSQL)."""
    return snapshot.queryset.order_by("-created_at", "-pk").values_list(*fields).iterator(chunk_size=EXPORT_CHUNK)
