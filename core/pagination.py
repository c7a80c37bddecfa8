"""Pagination for list endpoints, in the two styles the specs use, with their bounds and 400s.

- page/limit (Mark): `?page=2&limit=20` -> body `{"total", "page", "limit", "data"}`; a page past the
  end is an empty `data`, never an error.
- limit/offset (Routiq, LoveRescue's `limit`): `?limit=50&offset=100`.

Parsing raises `ApiError(400)` naming the parameter; the view's API renders it in its own body. Counting
and slicing are two queries whatever the page, so list endpoints stay flat as rows grow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

from core.errors import ApiError


def parse_ascii_int(raw: str) -> int | None:
    """A non-negative integer written in ASCII digits only, else None. (str.isdigit() also accepts
    "²" or "٣", on which int() raises or which no client means.)"""
    return int(raw) if raw.isascii() and raw.isdigit() else None


def parse_int_param(
    params: Mapping[str, str],
    name: str,
    *,
    default: int,
    minimum: int,
    maximum: int | None = None,
    code: str | None = None,
) -> int:
    """A bounded integer query parameter; absent -> default; anything else outside the bounds -> 400
    "<name> must be an integer from <min> to <max>" (or "... of at least <min>" when unbounded)."""
    if name not in params:
        return default
    value = parse_ascii_int(str(params[name]).strip())
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise ApiError(400, f"{name} must be an integer {bounds}", code=code)
    return value


@dataclass(frozen=True)
class PageRequest:
    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


@dataclass(frozen=True)
class OffsetRequest:
    limit: int
    offset: int


@dataclass(frozen=True)
class Page:
    total: int
    page: int
    limit: int
    items: Sequence[Any]


# Pages past this are refused: OFFSET scans the skipped rows, so an unbounded page is a cheap DoS.
MAX_OFFSET = 1_000_000


def page_request(
    params: Mapping[str, str], *, default_limit: int = 20, max_limit: int = 100, code: str | None = None
) -> PageRequest:
    limit = parse_int_param(params, "limit", default=default_limit, minimum=1, maximum=max_limit, code=code)
    page = parse_int_param(params, "page", default=1, minimum=1, maximum=MAX_OFFSET // limit + 1, code=code)
    return PageRequest(page=page, limit=limit)


def offset_request(
    params: Mapping[str, str], *, default_limit: int = 50, max_limit: int = 100, code: str | None = None
) -> OffsetRequest:
    limit = parse_int_param(params, "limit", default=default_limit, minimum=1, maximum=max_limit, code=code)
    offset = parse_int_param(params, "offset", default=0, minimum=0, maximum=MAX_OFFSET, code=code)
    return OffsetRequest(limit=limit, offset=offset)


def paginate(queryset, request: PageRequest, *, total: int | None = None) -> Page:
    """One COUNT and one sliced SELECT. A page past the end has no items. `total`: the count, where the caller
    knows it without counting (a kept count, core.kept_counts); None: counted here."""
    if total is None:
        total = queryset.count()
    items = list(queryset[request.offset : request.offset + request.limit]) if request.offset < total else []
    return Page(total=total, page=request.page, limit=request.limit, items=items)


def page_body(page: Page, data: list) -> dict:
    return {"total": page.total, "page": page.page, "limit": page.limit, "data": data}


_PAGE_SERIALIZERS: dict[type, type] = {}


def page_serializer(item_serializer: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The output declaration of a page of `item_serializer`: renders a `Page` and documents
    `{"total", "page", "limit", "data": [item]}` in the OpenAPI schema (one class per item type)."""
    if item_serializer not in _PAGE_SERIALIZERS:
        name = item_serializer.__name__.removesuffix("Serializer").removesuffix("Output") + "Page"
        _PAGE_SERIALIZERS[item_serializer] = type(
            name,
            (serializers.Serializer,),
            {
                "total": serializers.IntegerField(help_text="Items matching the filters, all pages"),
                "page": serializers.IntegerField(help_text="This page, from 1"),
                "limit": serializers.IntegerField(help_text="Items per page"),
                "data": item_serializer(many=True, source="items"),
                "__module__": item_serializer.__module__,
            },
        )
    return _PAGE_SERIALIZERS[item_serializer]
