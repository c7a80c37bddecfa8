"""The cache keys of the caseload bodies (GET /clients, /outcomes): the therapist's CaseloadGeneration token,
which the database replaces in the transaction of every write to what those bodies show (integration.models,
`_caseload_triggers`)."""

from __future__ import annotations

from django.db import connection

from integration.models import CaseloadGeneration, Therapist


def caseload_body_key(therapist: Therapist, body: str) -> str | None:
    """The cache key of `body` ("clients", "outcomes") for this therapist now, or None: not cacheable (not on
    PostgreSQL, where the triggers live, or no generation row).

    Read before any of the body's rows: a body computed from rows committed after this read is stored under a
    token that is already gone, so it is never served."""
    if connection.vendor != "postgresql":
        return None
    token = CaseloadGeneration.objects.filter(therapist_id=therapist.pk).values_list("token", flat=True).first()
    if token is None:
        return None
    return f"loverescue-caseload:{body}:{therapist.pk}:{token}"
