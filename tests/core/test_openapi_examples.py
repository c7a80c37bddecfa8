"""The OpenAPI document teaches: every operation has request and response examples, each one valid against the
schema it illustrates, and each API's tag says who calls it, how to authenticate, its error body and its limits."""

from __future__ import annotations

import copy
import uuid
from datetime import date, datetime
from pathlib import Path

import jsonschema
import pytest
from django.test import Client

from core.apis import CAREOS, CAREOS_RATES, LOVERESCUE, MARK_RATES, ROUTIQ_ADMIN_RATES, THERAPIST_RATES
from core.openapi_examples import collected_examples, describe_rate_policy, error_example

pytestmark = pytest.mark.django_db

HTTP_METHODS = {"get", "put", "post", "patch", "delete"}
REPO = Path(__file__).resolve().parents[2]
HTML_PAGES = {"/docs", "/redoc"}


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def operations(schema):
    for route, item in schema["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS and route not in HTML_PAGES:
                yield f"{method.upper()} {route}", operation


# --- OpenAPI 3.0 schema objects -> JSON Schema (draft 4, which 3.0's keywords follow) --------------------------


def _to_json_schema(node):
    """`nullable` becomes a null alternative; `#/components/schemas/X` refs point into `definitions`."""
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _to_json_schema(value) for key, value in node.items() if key != "nullable"}
    if "$ref" in converted:
        converted = {"$ref": converted["$ref"].replace("#/components/schemas/", "#/definitions/")}
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def _is_datetime(value) -> bool:
    return not isinstance(value, str) or bool(datetime.fromisoformat(value))


def _is_date(value) -> bool:
    return not isinstance(value, str) or bool(date.fromisoformat(value))


def _is_uuid(value) -> bool:
    return not isinstance(value, str) or bool(uuid.UUID(value))


FORMATS = jsonschema.FormatChecker(formats=("email", "ipv4", "ipv6"))
FORMATS.checks("date-time", raises=ValueError)(_is_datetime)
FORMATS.checks("date", raises=ValueError)(_is_date)
FORMATS.checks("uuid", raises=ValueError)(_is_uuid)


def example_errors(schema, media_schema, value) -> list[str]:
    """Every way `value` breaks `media_schema` (refs resolved against the document's components)."""
    document = _to_json_schema(media_schema)
    document["definitions"] = _to_json_schema(schema["components"]["schemas"])
    validator = jsonschema.Draft4Validator(document, format_checker=FORMATS)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
        for error in validator.iter_errors(value)
    ]


def all_examples(schema):
    """(where, media schema, example value) for every example in the document."""
    for label, operation in operations(schema):
        places = [("request", operation.get("requestBody", {}).get("content", {}))]
        places += [(status, response.get("content", {})) for status, response in operation["responses"].items()]
        for place, content in places:
            for media_type, media in content.items():
                for name, example in media.get("examples", {}).items():
                    yield f"{label} {place} {media_type} {name}", media["schema"], example["value"]


# --- Every operation has examples ----------------------------------------------------------------------------


def test_every_request_body_has_an_example(schema):
    missing = [
        f"{label} {media_type}"
        for label, operation in operations(schema)
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items()
        if not media.get("examples")
    ]
    assert not missing, f"request bodies without an example: {missing}"


def test_every_response_with_a_body_has_an_example(schema):
    """Success responses (from the APIs' example modules) and every documented error (rendered by the API)."""
    missing = [
        f"{label} {status} {media_type}"
        for label, operation in operations(schema)
        for status, response in operation["responses"].items()
        for media_type, media in response.get("content", {}).items()
        if not media.get("examples") and not is_file(media_type, media)
    ]
    assert not missing, f"responses without an example: {missing}"


def is_file(media_type: str, media: dict) -> bool:
    """A binary download (PDF, audio): nothing to show as an example. Text (CSV) is shown."""
    return media["schema"].get("format") == "binary" and not media_type.startswith("text/")


def test_every_operation_has_a_success_example(schema):
    for label, operation in operations(schema):
        success = {code: response for code, response in operation["responses"].items() if code.startswith("2")}
        with_body = [code for code, response in success.items() if response.get("content")]
        assert with_body or set(success) == {"204"}, f"{label}: no success response with a body to illustrate"


def test_every_example_is_valid_against_its_schema(schema):
    examples = list(all_examples(schema))
    assert len(examples) > 300
    invalid = {
        where: errors
        for where, media_schema, value in examples
        if (errors := example_errors(schema, media_schema, value))
    }
    assert not invalid, "examples that break their schema:\n" + "\n".join(
        f"{where}: {errors[:3]}" for where, errors in invalid.items()
    )


def test_the_check_rejects_a_broken_example(schema):
    """The validation above is real: a wrong type, a missing required field, a bad id or date all fail it."""
    operation = schema["paths"]["/api/v1/patients"]["post"]
    media = operation["responses"]["201"]["content"]["application/json"]
    good = next(iter(media["examples"].values()))["value"]
    assert example_errors(schema, media["schema"], good) == []
    for key, broken_value in (("id", 12345), ("registration_date", "last Tuesday"), ("status", "sleeping")):
        broken = copy.deepcopy(good) | {key: broken_value}
        assert example_errors(schema, media["schema"], broken), f"{key}={broken_value!r} passed"
    missing_required = {key: value for key, value in good.items() if key != "id"}
    assert example_errors(schema, media["schema"], missing_required)


def test_declared_examples_name_real_operations_and_statuses(schema):
    """A renamed operation or a status the view no longer documents would leave an example silently unused."""
    by_id = {operation["operationId"]: (label, operation) for label, operation in operations(schema)}
    for operation_id, examples in collected_examples().items():
        assert operation_id in by_id, f"examples for an unknown operation {operation_id}"
        label, operation = by_id[operation_id]
        if examples.request is not None:
            assert "requestBody" in operation, f"{label} takes no body but has a request example"
        for status in examples.responses:
            assert str(status) in operation["responses"], f"{label} does not document {status}"


def test_error_examples_are_the_bodies_each_api_renders(schema):
    unauthorized = schema["paths"]["/api/integration/clients"]["get"]["responses"]["401"]["content"]
    values = [example["value"] for example in unauthorized["application/json"]["examples"].values()]
    assert error_example(LOVERESCUE, 401, "/api/integration/clients") in values or any(
        value.get("code") in {"AUTH_FAILED", "TOKEN_EXPIRED"} for value in values
    )
    limited = schema["paths"]["/api/leads/ingest"]["post"]["responses"]["429"]["content"]["application/json"]
    assert [example["value"] for example in limited["examples"].values()] == [
        error_example(CAREOS, 429, "/api/leads/ingest")
    ]


def test_the_document_is_the_same_on_every_request(schema, django_db_blocker):
    with django_db_blocker.unblock():
        again = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert again == schema


# --- Tag descriptions ------------------------------------------------------------------------------------------

DOCS = {
    "Platform": "docs/operations.md",
    "LoveRescue": "docs/loverescue.md",
    "Mark": "docs/mark.md",
    "CareOS": "docs/careos.md",
    "Therapist dashboard": "docs/therapist-dashboard.md",
    "Routiq": "docs/routiq.md",
}


def test_each_tag_says_who_calls_it_how_to_authenticate_and_where_the_docs_are(schema):
    tags = {tag["name"]: tag["description"] for tag in schema["tags"]}
    assert set(tags) == set(DOCS)
    for name, document in DOCS.items():
        assert "Called by" in tags[name] or name == "Platform", name
        assert document in tags[name] and (REPO / document).is_file(), f"{name}: no link to an existing {document}"
        assert "**Error body**" in tags[name] and "**Rate limits**" in tags[name], name
    assert "`X-API-Key`" in tags["CareOS"] and "`X-Platform`" in tags["CareOS"]
    assert "POST /api/integration/auth" in tags["LoveRescue"]


def test_tag_limits_and_error_bodies_come_from_the_api_declarations(schema):
    """Generated from core/apis.py and the views' rate policies: a changed limit changes the docs."""
    tags = {tag["name"]: tag["description"] for tag in schema["tags"]}
    assert describe_rate_policy(CAREOS_RATES) in tags["CareOS"]
    assert "100 requests per minute per credential" in tags["CareOS"]
    assert describe_rate_policy(MARK_RATES) in tags["Mark"]
    assert describe_rate_policy(THERAPIST_RATES) in tags["Therapist dashboard"]
    assert describe_rate_policy(ROUTIQ_ADMIN_RATES) + " on `POST /api/v1/admin/database/cleanup`" in tags["Routiq"]
    assert '"code": "AUTH_FAILED"' in tags["LoveRescue"]
    assert '"detail":' in tags["Routiq"] and '"timestamp":' in tags["Routiq"]
    assert "(ISO 8601 time)" in tags["LoveRescue"] and "(epoch seconds)" in tags["Routiq"]


# --- The docs pages themselves ---------------------------------------------------------------------------------


def test_swagger_ui_shows_no_online_validator_badge():
    """Swagger UI's default validator badge is an image from validator.swagger.io on any host but localhost (so the
    browser test on 127.0.0.1 cannot see it): it is switched off."""
    html = Client().get("/docs").content.decode()
    assert '"validatorUrl": null' in html


def test_favicon_answers():
    response = Client().get("/favicon.ico")
    assert response.status_code == 302
    assert Client().get(response["Location"]).status_code == 200
