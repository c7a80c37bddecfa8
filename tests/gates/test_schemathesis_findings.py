"""What the Schemathesis gate found, each as a plain request that reproduces it.

- GET /api/integration/alerts documented `limit` as a bare integer ("1..500" only in prose), so a
  generator (and a partner's client generated from the schema) sends 0 or 10,000 and gets a 400. The
  schema now states the bounds the server enforces (found with `positive_data_acceptance` on; the gate
  runs without that check, see CHECKS in test_schemathesis.py).

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
