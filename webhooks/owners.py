"""Who owns a webhook endpoint, by name, without webhooks importing the owners' apps.

An endpoint names its owner by `owner_type` + `owner_id` (a partner's UUID, an organization's `org_...`).
The app that owns such endpoints registers the type once, from its AppConfig.ready():

    # integration/apps.py
    from webhooks import owners
    owners.register_model("integration_partner", "integration.IntegrationPartner", label="LoveRescue partner")

`register_model` builds the two functions the admin needs from the model (looked up lazily by label):

- resolve: `ids -> {id: (name, admin_url)}`, one query for any number of ids;
- search: `term -> ids`, the owners whose name contains the term (so searching "SuperTool" finds its
  endpoints and deliveries).

`register` takes hand-written functions of the same shapes instead. An owner type nobody registered is
shown as its raw id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlencode

from django.apps import apps
from django.urls import NoReverseMatch, reverse

# At most this many owners per type match one search term: a term that matches more is too vague to be
# useful, and the ids go into an IN (...) list.
SEARCH_LIMIT = 500

Resolve = Callable[[list[str]], dict[str, tuple[str, str]]]
Search = Callable[[str], Iterable[str]]


@dataclass(frozen=True)
class Owner:
    owner_type: str
    owner_id: str
    name: str  # the owner's name, or its raw id when it cannot be resolved
    admin_url: str = ""  # its admin change page; "" when there is none
    found: bool = True


@dataclass(frozen=True)
class OwnerType:
    owner_type: str
    label: str
    resolve: Resolve
    search: Search


_types: dict[str, OwnerType] = {}


def register(owner_type: str, *, label: str, resolve: Resolve, search: Search) -> None:
    """Declare an owner type (registering again replaces it: ready() may run again in tests)."""
    _types[owner_type] = OwnerType(owner_type=owner_type, label=label, resolve=resolve, search=search)


def register_model(owner_type: str, model: str, *, label: str, id_field: str = "pk", name_field: str = "name") -> None:
    """Declare an owner type whose owners are rows of `model` ("app_label.ModelName"): `owner_id` is the
    row's `id_field` (as text) and its name `name_field`."""

    def model_class():
        return apps.get_model(model)

    def resolve(ids: list[str]) -> dict[str, tuple[str, str]]:
        cls = model_class()
        opts = cls._meta
        rows = cls._default_manager.filter(**{f"{id_field}__in": _valid_ids(cls, id_field, ids)})
        resolved = {}
        for owner_id, pk, name in rows.values_list(id_field, "pk", name_field):
            try:
                url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk])
            except NoReverseMatch:
                url = ""
            resolved[str(owner_id)] = (str(name), url)
        return resolved

    def search(term: str) -> list[str]:
        rows = model_class()._default_manager.filter(**{f"{name_field}__icontains": term})
        return [str(value) for value in rows.values_list(id_field, flat=True)[:SEARCH_LIMIT]]

    register(owner_type, label=label, resolve=resolve, search=search)


def _valid_ids(model, id_field: str, ids: list[str]) -> list:
    """The ids the field can hold (a UUID column refuses "partner-1" with an error, not a miss)."""
    field = model._meta.pk if id_field == "pk" else model._meta.get_field(id_field)
    valid = []
    for value in ids:
        try:
            valid.append(field.to_python(value))
        except Exception:  # noqa: S112 (a malformed id simply matches no owner)
            continue
    return valid


def owner_types() -> dict[str, OwnerType]:
    return dict(_types)


def label_of(owner_type: str) -> str:
    registered = _types.get(owner_type)
    return registered.label if registered else owner_type.replace("_", " ")


def resolve(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Owner]:
    """Every (owner_type, owner_id) pair's Owner, with one resolver call (one query) per owner type."""
    by_type: dict[str, set[str]] = defaultdict(set)
    for owner_type, owner_id in pairs:
        by_type[owner_type].add(str(owner_id))
    owners: dict[tuple[str, str], Owner] = {}
    for owner_type, ids in by_type.items():
        registered = _types.get(owner_type)
        found = registered.resolve(sorted(ids)) if registered else {}
        for owner_id in ids:
            if owner_id in found:
                name, url = found[owner_id]
                owners[(owner_type, owner_id)] = Owner(owner_type, owner_id, name, url)
            else:
                owners[(owner_type, owner_id)] = Owner(owner_type, owner_id, owner_id, "", found=False)
    return owners


def search(term: str) -> dict[str, list[str]]:
    """{owner_type: [owner ids whose name contains `term`]}, registered types only, empty ones left out."""
    term = term.strip()
    if not term:
        return {}
    matches = {owner_type: list(registered.search(term)) for owner_type, registered in _types.items()}
    return {owner_type: ids for owner_type, ids in matches.items() if ids}


def changelist_url(model_name: str, *, owner_type: str, owner_id: str) -> str:
    """The webhook admin's list of one owner's endpoints (`model_name="webhookendpoint"`) or deliveries
    (`"webhookdelivery"`): for links from the owner's own admin page."""
    query = urlencode({"owner_type": owner_type, "owner_id": str(owner_id)})
    return f"{reverse(f'admin:webhooks_{model_name}_changelist')}?{query}"
