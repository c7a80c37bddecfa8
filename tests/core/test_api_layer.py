"""The shared API layer in core: actors, domain errors in each envelope, validation, pagination,
phones and rounding."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.test import RequestFactory
from rest_framework import serializers

from core import domain, rounding
from core.actors import Actor, ActorType
from core.apis import CAREOS, LOVERESCUE, MARK, ROUTIQ, THERAPIST
from core.envelopes import render_api_error
from core.errors import ApiError, api_error_from_exception
from core.pagination import (
    MAX_OFFSET,
    Page,
    offset_request,
    page_body,
    page_request,
    page_serializer,
    paginate,
    parse_int_param,
)
from core.phones import InvalidPhone, e164_or_none, mask, normalize_e164
from core.validation import validated

# --- Actor ---------------------------------------------------------------------------------------------


def test_actor_accepts_only_the_vocabulary():
    assert Actor.system("beat") == Actor(ActorType.SYSTEM, "beat")
    assert str(Actor.integration_partner(7)) == "integration_partner:7"
    assert str(Actor.anonymous()) == "anonymous"
    with pytest.raises(ValueError, match="Unknown actor type"):
        Actor("partner", "1")  # the old, ambiguous word is not in the vocabulary


def test_actor_id_is_text_capped_like_the_audit_column():
    assert Actor.client(123).id == "123"
    assert len(Actor.system("x" * 500).id) == 100


# --- Domain errors -> each API's envelope -------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (domain.Invalid("bad"), 400),
        (domain.AuthenticationFailed("who"), 401),
        (domain.PermissionDenied("no"), 403),
        (domain.NotFound("gone"), 404),
        (domain.Conflict("twice"), 409),
        (domain.Unavailable("later"), 503),
        (domain.DomainError("generic"), 400),
    ],
)
def test_domain_errors_map_to_statuses(error, status):
    api_error = api_error_from_exception(error)
    assert (api_error.status, api_error.message) == (status, error.message)


def _render(family, error):
    request = RequestFactory().get("/x")
    response = render_api_error(request, api_error_from_exception(error), family)
    return response.status_code, json.loads(response.content)


def test_a_domain_error_renders_in_every_api_body():
    error = domain.NotFound("Patient not found", code="patient_not_found", details={"id": "pat_1"})
    assert _render(LOVERESCUE, error) == (
        404,
        {"error": "Patient not found", "code": "PATIENT_NOT_FOUND", "details": {"id": "pat_1"}},
    )
    assert _render(MARK, error) == (
        404,
        {"error": {"code": "patient_not_found", "message": "Patient not found", "details": {"id": "pat_1"}}},
    )
    assert _render(CAREOS, error) == (404, {"error": "Patient not found"})
    assert _render(THERAPIST, error) == (
        404,
        {"error": "Patient not found", "code": "PATIENT_NOT_FOUND", "details": {"id": "pat_1"}},
    )
    status, body = _render(ROUTIQ, error)
    assert (status, body["error"], body["detail"], body["path"]) == (404, "Not found", "Patient not found", "/x")


def test_domain_error_without_code_takes_the_apis_default_code():
    assert _render(MARK, domain.Conflict("Already booked"))[1]["error"]["code"] == "conflict"


# --- validated() ----------------------------------------------------------------------------------------


class _Input(serializers.Serializer):
    name = serializers.CharField(max_length=5)
    count = serializers.IntegerField(min_value=1)


def test_validated_returns_data():
    assert validated(_Input, {"name": "ab", "count": "3"}) == {"name": "ab", "count": 3}


def test_validated_names_every_bad_field_or_the_first():
    with pytest.raises(ApiError) as caught:
        validated(_Input, {"name": "toolong", "count": 0}, code="BAD_REQUEST")
    assert caught.value.status == 400
    assert caught.value.code == "BAD_REQUEST"
    assert caught.value.message.startswith("name: ") and "; count: " in caught.value.message
    with pytest.raises(ApiError) as first:
        validated(_Input, {"name": "toolong", "count": 0}, first_only=True)
    assert first.value.message.startswith("name: ") and "count" not in first.value.message


# --- pagination ------------------------------------------------------------------------------------------


def test_page_request_defaults_and_bounds():
    assert page_request({}) == page_request({"page": "1", "limit": "20"})
    assert page_request({"page": "3", "limit": "100"}).offset == 200
    for params, name in [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"page": "0"}, "page"),
        ({"page": "1.5"}, "page"),
        ({"page": str(MAX_OFFSET)}, "page"),
    ]:
        with pytest.raises(ApiError) as caught:
            page_request(params)
        assert caught.value.status == 400
        assert caught.value.message.startswith(f"{name} must be an integer")


def test_offset_request_and_int_param():
    assert offset_request({"limit": "10", "offset": "30"}) == offset_request({"offset": "30", "limit": "10"})
    assert offset_request({}).offset == 0
    with pytest.raises(ApiError, match="offset must be an integer from 0"):
        offset_request({"offset": "-5"})
    assert parse_int_param({}, "limit", default=7, minimum=1) == 7
    with pytest.raises(ApiError, match="limit must be an integer of at least 1"):
        parse_int_param({"limit": "0"}, "limit", default=7, minimum=1)


@pytest.mark.django_db
def test_paginate_counts_and_slices_and_a_page_past_the_end_is_empty(django_assert_num_queries):
    from accounts.models import User

    for index in range(5):
        User.objects.create(username=f"u{index}")
    queryset = User.objects.order_by("username")
    with django_assert_num_queries(2):
        page = paginate(queryset, page_request({"page": "2", "limit": "2"}))
    assert (page.total, [u.username for u in page.items]) == (5, ["u2", "u3"])
    with django_assert_num_queries(1):  # past the end: the count tells, no SELECT of rows
        past = paginate(queryset, page_request({"page": "9", "limit": "2"}))
    assert (past.total, list(past.items)) == (5, [])


class _Item(serializers.Serializer):
    name = serializers.CharField()


def test_page_serializer_renders_the_page_shape():
    page = Page(total=3, page=2, limit=2, items=[{"name": "c"}])
    assert page_serializer(_Item)(page).data == {"total": 3, "page": 2, "limit": 2, "data": [{"name": "c"}]}
    assert page_serializer(_Item) is page_serializer(_Item)
    assert page_body(page, ["x"]) == {"total": 3, "page": 2, "limit": 2, "data": ["x"]}


# --- phones ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+14155550123", None, "+14155550123"),
        ("+1 (415) 555-0123", None, "+14155550123"),
        ("(415) 555-0123", "US", "+14155550123"),
        ("415.555.0123", "us", "+14155550123"),
        ("whatsapp:+14155550123", None, "+14155550123"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 20 7946 0958", "US", "+442079460958"),  # an international number ignores the hint
        ("tel:+1-415-555-0123", None, "+14155550123"),
        ("\uff0b14155550123", None, "+14155550123"),  # full-width plus
    ],
)
def test_normalize_e164(raw, region, expected):
    assert normalize_e164(raw, region=region) == expected


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("", None),
        ("4155550123", None),  # national number without a region hint
        ("+1555555", None),  # too short
        ("+15555550123", None),  # possible length, but not a valid number
        ("not a phone", "US"),
        ("+1" + "2" * 300, None),
    ],
)
def test_normalize_e164_refuses(raw, region):
    with pytest.raises(InvalidPhone):
        normalize_e164(raw, region=region)


def test_invalid_phone_is_a_400_domain_error():
    assert api_error_from_exception(InvalidPhone()).status == 400


def test_e164_or_none_and_mask():
    assert e164_or_none("(415) 555-0123", region="US") == "+14155550123"
    assert e164_or_none("smith", region="US") is None
    assert e164_or_none("+15555550123") is None
    assert mask("+14155550123") == "+1 ••• ••• 0123"
    assert mask("") == ""
    assert mask("12") == "•••"


# --- rounding --------------------------------------------------------------------------------------------


def test_ratio_rounds_half_up_in_decimal():
    assert rounding.ratio(25, 4) == 6.3  # 6.25: float round() gives 6.2
    assert rounding.ratio(1, 8, places=2) == 0.13
    assert rounding.ratio(5, 0) is None
    assert rounding.ratio(0, 3) == 0.0
    assert rounding.round_half_up(2.675, 2) == 2.68  # the float 2.675 is 2.67499..., round() gives 2.67
    assert rounding.round_half_up(Decimal("-1.25")) == -1.3
    assert rounding.round_half_up(None) is None


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([1, 1, 1], [34, 33, 33]),
        ([0, 0], [0, 0]),
        ([2, 1], [67, 33]),
        ([1, 1, 1, 1, 1, 1], [17, 17, 17, 17, 16, 16]),
        ([10], [100]),
        ([], []),
    ],
)
def test_percentages_add_up_to_100(counts, expected):
    result = rounding.percentages(counts)
    assert result == expected
    assert sum(result) in (0, 100)


def test_percentage():
    assert rounding.percentage(1, 8) == 13  # 12.5 -> 13
    assert rounding.percentage(1, 3, places=1) == 33.3
    assert rounding.percentage(1, 0) == 0
