"""What the Schemathesis gate found, each as a plain request that reproduces it.

- GET /api/integration/alerts documented `limit` as a bare integer ("1..500" only in prose), so a
  generator (and a partner's client generated from the schema) sends 0 or 10,000 and gets a 400. The
  schema now states the bounds the server enforces (found with `positive_data_acceptance` on; the gate
  runs without that check, see CHECKS in test_schemathesis.py).

- The therapist dashboard documented GET /api/session's `limit` and `page` as bare integers and
  `skillScores` (POST /api/session/skills, 1 to 50 skills; progressMetrics.skillScores, at most 50) without
  its size, so `?limit=0` and `{"skillScores": {}}` were schema-valid and answered 400; an empty
  query value is taken as absent, so `?sessionId=` where it is required was schema-valid and answered 400
  MISSING_PARAMETER: required `sessionId` parameters now say `minLength: 1` (optional ones stay plain: empty
  is absent, which they may be). The schema now
  states the bounds (found with `positive_data_acceptance` on, as above).

Found by the gate and fixed under other findings, with their own tests: a journal entry with `"text": 0`
was accepted (finding 7, tests/security/test_leaks.py).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

ALERTS = "/api/integration/alerts"


def _schema(client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_alerts_limit_documents_the_bounds_the_server_enforces(client, lr_partner, lr_therapist, lr_link):
    parameters = _schema(client)["paths"][ALERTS]["get"]["parameters"]
    limit = next(parameter for parameter in parameters if parameter["name"] == "limit")["schema"]
    assert (limit["type"], limit.get("minimum"), limit.get("maximum")) == ("integer", 1, 500)

    headers = lr_partner.headers(lr_therapist)
    for value in (limit["minimum"], limit["maximum"]):
        assert client.get(ALERTS, {"limit": value}, **headers).status_code == 200
    for value in (limit["minimum"] - 1, limit["maximum"] + 1):
        response = client.get(ALERTS, {"limit": value}, **headers)
        assert response.status_code == 400
        assert response.json() == {"error": "limit must be an integer from 1 to 500", "code": "BAD_REQUEST"}


SESSIONS = "/api/session"
SKILLS = "/api/session/skills"


def _parameter(schema: dict, path: str, name: str) -> dict:
    return next(parameter for parameter in schema["paths"][path]["get"]["parameters"] if parameter["name"] == name)[
        "schema"
    ]


def _component(schema: dict, ref: str) -> dict:
    return schema["components"]["schemas"][ref.split("/")[-1]]


def test_therapist_session_list_documents_the_paging_bounds_the_server_enforces(client):
    from tests.sessions_analytics.factories import bearer, make_world

    schema = _schema(client)
    limit, page = _parameter(schema, SESSIONS, "limit"), _parameter(schema, SESSIONS, "page")
    assert (limit["type"], limit.get("minimum"), limit.get("maximum")) == ("integer", 1, 100)
    # The page's maximum depends on the limit: not stated (a stated one would be wrong for some limit).
    assert (page["type"], page.get("minimum"), page.get("maximum")) == ("integer", 1, None)

    headers = bearer(make_world().therapist)
    for query in ({"limit": 1}, {"limit": 100}, {"page": 1}, {"page": 10_002}):
        assert client.get(SESSIONS, query, **headers).status_code == 200, query
    for query in ({"limit": 0}, {"limit": 101}, {"page": 0}):
        response = client.get(SESSIONS, query, **headers)
        assert response.status_code == 400, query
        assert response.json()["code"] == "VALIDATION_ERROR", query


def test_therapist_skill_scores_document_their_size(client):
    from tests.sessions_analytics.factories import bearer, make_session, make_world

    schema = _schema(client)
    request = schema["paths"][SKILLS]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    scores = _component(schema, request)["properties"]["skillScores"]
    assert (scores.get("minProperties"), scores.get("maxProperties")) == (1, 50)
    progress = schema["paths"]["/api/session/progress"]["post"]["requestBody"]["content"]["application/json"]
    metrics = _component(
        schema, _component(schema, progress["schema"]["$ref"])["properties"]["progressMetrics"]["$ref"]
    )
    assert (
        metrics["properties"]["skillScores"].get("minProperties"),
        metrics["properties"]["skillScores"].get("maxProperties"),
    ) == (None, 50)

    world = make_world()
    session = make_session(world.therapist, world.organization)
    headers = bearer(world.therapist)

    def post(count: int):
        body = {"sessionId": session.public_id, "skillScores": {f"Skill {n}": 50 for n in range(count)}}
        return client.post(SKILLS, body, content_type="application/json", **headers)

    assert [post(count).status_code for count in (0, 1, 50, 51)] == [400, 200, 200, 400]


REQUIRED_SESSION_QUERIES = (
    "/api/session/progress",
    "/api/session/snapshots",
    "/api/session/analytics",
    "/api/evaluation",
)


@pytest.mark.parametrize("path", REQUIRED_SESSION_QUERIES)
def test_required_session_id_queries_are_not_empty(client, path):
    from tests.sessions_analytics.factories import bearer, make_world

    parameter = _parameter(_schema(client), path, "sessionId")
    assert (parameter["type"], parameter.get("minLength")) == ("string", 1)
    # An empty value is no value: the answer is the missing parameter's.
    response = client.get(path, {"sessionId": ""}, **bearer(make_world().therapist))
    assert response.status_code == 400 and response.json()["code"] == "MISSING_PARAMETER"


def test_optional_id_queries_may_be_empty(client):
    """Empty is absent, which an optional parameter may be: the schema must not call it invalid (the gate's
    negative cases would expect a 400 for `?therapistId=`, which lists the caller's own sessions)."""
    from tests.sessions_analytics.factories import bearer, make_world

    schema = _schema(client)
    for path, name in (("/api/session", "therapistId"), ("/api/session/skills", "therapistId"),
                       ("/api/session/skills", "sessionId"), ("/api/session/comparison", "sessionId")):  # fmt: skip
        assert "minLength" not in _parameter(schema, path, name), (path, name)
    assert client.get("/api/session", {"therapistId": ""}, **bearer(make_world().therapist)).status_code == 200
