"""Reads of the audit tables: the CSV export snapshot (flat rows, one query per chunk, no per-row lookups),
and the names of the actors a page of rows shows or a search names."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from django.apps import apps
from django.conf import settings
from django.db.models import Count, Max, Model, Q, QuerySet

from core.actors import ActorType

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


# --- Who the actors are: names for the admin's pages and its search ---------------------------------

# Actor types whose id names a row with a readable name: (model label, field the id is, field shown).
# Looked up by label, so audit imports no domain app. Clients and therapists are shown by their id (their
# public UUID: their names are protected data); system and anonymous ids are already words.
NAMED_ACTORS: dict[str, tuple[str, str, str]] = {
    ActorType.USER: (settings.AUTH_USER_MODEL, "pk", "username"),
    ActorType.INTEGRATION_PARTNER: ("integration.IntegrationPartner", "pk", "name"),
    ActorType.PARTNER_PLATFORM: ("leads.PartnerPlatform", "slug", "name"),
}
# Longest partner-name search term resolved to ids, and how many partners one term may match.
NAME_SEARCH_MAX_LENGTH = 200
NAME_SEARCH_LIMIT = 50


@dataclass(frozen=True)
class NamedActor:
    """A named actor: its name, and the model and primary key of its row (for a link)."""

    name: str
    model: type[Model]
    pk: object


def _valid_ids(actor_type: str, ids: Iterable[str]) -> set[str]:
    """Only ids that can be the stored kind (a staff pk is digits, a partner id a UUID): anything else
    names nobody, and must not reach the query as a bad value."""
    if actor_type == ActorType.USER:
        return {value for value in ids if value.isascii() and value.isdigit() and len(value) < 19}
    if actor_type == ActorType.INTEGRATION_PARTNER:
        valid = set()
        for value in ids:
            try:
                valid.add(str(uuid.UUID(value)))
            except ValueError:
                continue
        return valid
    return {value for value in ids if value}


def actor_names(actors: Iterable[tuple[str, str]]) -> dict[tuple[str, str], NamedActor]:
    """(actor_type, actor_id) -> its name, for a page of audit rows: one query per named actor type
    present (at most three), whatever the number of rows."""
    wanted: dict[str, set[str]] = {}
    for actor_type, actor_id in actors:
        if actor_type in NAMED_ACTORS and actor_id:
            wanted.setdefault(actor_type, set()).add(actor_id)
    found: dict[tuple[str, str], NamedActor] = {}
    for actor_type, ids in wanted.items():
        label, id_field, name_field = NAMED_ACTORS[actor_type]
        ids = _valid_ids(actor_type, ids)
        if not ids:
            continue
        model = apps.get_model(label)
        id_column = model._meta.pk.name if id_field == "pk" else id_field
        rows = model._default_manager.filter(**{f"{id_column}__in": ids}).values_list("pk", id_column, name_field)
        for pk, actor_id, name in rows:
            found[(actor_type, str(actor_id))] = NamedActor(name=name, model=model, pk=pk)
    return found


def actors_named(term: str) -> Q:
    """A condition on audit rows: their actor is an integration partner or partner platform whose name
    contains `term`, or the user whose username it is. One query per named actor type; the condition
    matches nothing when nobody has that name."""
    term = term.strip()[:NAME_SEARCH_MAX_LENGTH]
    condition = Q(pk__in=[])
    if not term:
        return condition
    for actor_type, (label, id_field, name_field) in NAMED_ACTORS.items():
        model = apps.get_model(label)
        lookup = f"{name_field}__iexact" if actor_type == ActorType.USER else f"{name_field}__icontains"
        id_column = model._meta.pk.name if id_field == "pk" else id_field
        ids = [
            str(value)
            for value in model._default_manager.filter(**{lookup: term}).values_list(id_column, flat=True)[
                :NAME_SEARCH_LIMIT
            ]
        ]
        if ids:
            condition |= Q(actor_type=actor_type, actor_id__in=ids)
    return condition
