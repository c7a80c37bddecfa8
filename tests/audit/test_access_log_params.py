"""Issue 15: the access row's INSERT parameters are built without Django's generic per-field conversion where
the value already has the column's type; they must be exactly what the model's save would send, whatever the
values (and any other type still goes through the field's own conversion)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from audit.services import _ACCESS_FIELDS, _access_params

FULL = {
    "created_at": datetime(2026, 11, 30, 12, 0, 1, 123456, tzinfo=UTC),
    "api": "mark",
    "actor_type": "user",
    "actor_id": "42",
    "on_behalf_of": "therapist:7c0a",
    "organization_id": "org_1",
    "method": "GET",
    "path": "/api/v1/patients/pat_1",
    "subject_ids": ["patient:pat_1"],
    "status_code": 200,
    "reason": "",
    "ip": "10.0.0.1",
    "user_agent": "probe/1",
    "request_id": "r" * 32,
    "duration_ms": 3,
}


class _Text(str):
    """A str subclass (as a lazy or marked-safe string is): not the exact type, so converted by the field."""


def _generic(fields: dict) -> list:
    return [
        field.get_db_prep_save(fields[field.name] if field.name in fields else field.get_default(), connection)
        for field in _ACCESS_FIELDS
    ]


def _comparable(params: list) -> list:
    return [(type(value), getattr(value, "obj", value)) for value in params]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"ip": "2001:db8::1"},
        {"ip": "::ffff:10.0.0.1"},
        {"ip": None, "subject_ids": []},
        {"status_code": 503, "reason": "SERVICE_UNAVAILABLE", "duration_ms": 0},
        {"status_code": True, "duration_ms": 7.0},  # not exactly int: the field converts
        {"api": _Text("mark"), "method": _Text("POST")},  # not exactly str: the field converts
        {"created_at": datetime(2026, 1, 2, 3, 4, 5)},  # naive: the field's own conversion (and its warning)
        {"on_behalf_of": None},
    ],
)
@pytest.mark.filterwarnings("ignore:DateTimeField .* received a naive datetime")
def test_parameters_are_what_the_model_would_send(changes):
    fields = {**FULL, **changes}
    assert _comparable(_access_params(fields, connection)) == _comparable(_generic(fields))


def test_missing_fields_take_the_model_defaults():
    fields = {k: v for k, v in FULL.items() if k not in ("reason", "subject_ids", "duration_ms", "on_behalf_of")}
    assert _comparable(_access_params(fields, connection)) == _comparable(_generic(fields))
