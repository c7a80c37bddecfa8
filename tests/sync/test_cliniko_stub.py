"""The Cliniko stand-in itself, spoken to with bare httpx: what later sync tests rely on."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import httpx
import pytest

from tests.cliniko_stub import ClinikoStub

UA = {"User-Agent": "Stub tests (dev@example.com)"}


@pytest.fixture
def stub():
    with ClinikoStub() as server:
        yield server


def get(stub, path, key="key-au1", headers=UA, **params):
    return httpx.get(f"{stub.base_url}{path}", params=params, auth=(key, ""), headers=headers, timeout=5)


def test_auth_user_agent_and_unknown_paths(stub):
    stub.add_account("key-au1")
    assert httpx.get(f"{stub.base_url}/patients", headers=UA, timeout=5).status_code == 401
    assert get(stub, "/patients", key="other").status_code == 401
    assert get(stub, "/patients", headers={"User-Agent": "python-httpx"}).status_code == 403
    assert get(stub, "/nothing").status_code == 404
    assert get(stub, "/patients").status_code == 200


def test_list_shape_paging_links_and_clamped_page_size(stub):
    key = stub.add_account("key-au1")
    stub.generate(key, patients=130, appointments=0)
    body = get(stub, "/patients", per_page=500).json()
    assert body["total_entries"] == 130 and len(body["patients"]) == 100  # per_page at most 100
    assert body["links"]["self"].startswith(stub.base_url) and "page=2" in body["links"]["next"]
    second = httpx.get(body["links"]["next"], auth=(key, ""), headers=UA, timeout=5).json()
    assert len(second["patients"]) == 30 and "next" not in second["links"] and "previous" in second["links"]
    ids = [p["id"] for p in body["patients"] + second["patients"]]
    assert len(set(ids)) == 130 and all(isinstance(i, str) and i.isdigit() for i in ids)
    assert get(stub, "/patients").json()["patients"].__len__() == 50  # Cliniko's default page size
    one = get(stub, f"/patients/{ids[0]}").json()
    assert one["id"] == ids[0] and one["patient_phone_numbers"] is not None


def test_filters_and_bad_filters(stub):
    key = stub.add_account("key-au1")
    ids = stub.generate(key, patients=10, appointments=20)["patients"]
    since = stub.stamp()
    stub.edit_patient(key, ids[0], first_name="Changed")
    params = {"q[]": f"updated_at:>={since.strftime('%Y-%m-%dT%H:%M:%SZ')}"}
    assert [p["id"] for p in get(stub, "/patients", **params).json()["patients"]] == [ids[0]]
    assert get(stub, "/patients", **{"q[]": "first_name:~Ch"}).status_code == 400
    assert get(stub, "/patients", **{"q[]": "updated_at:>=yesterday"}).status_code == 400
    apts = get(stub, "/individual_appointments", per_page=100, **{"q[]": f"patient_id:={ids[1]}"}).json()
    assert all(a["patient"]["links"]["self"].endswith(f"/patients/{ids[1]}") for a in apts["individual_appointments"])


def test_generated_history_is_in_the_past(stub):
    key = stub.add_account("key-au1")
    reference = datetime(2026, 3, 1, 12, tzinfo=UTC)
    stub.generate(key, patients=50, appointments=50, reference=reference)
    stamps = [r["updated_at"] for r in stub.account(key).patients.values()]
    stamps += [r["updated_at"] for r in stub.account(key).appointments.values()]
    assert max(stamps) <= "2026-03-01T11:00:00Z"
    created = [r["created_at"] for r in stub.account(key).patients.values()]
    assert created == sorted(created)  # created in id order, like real records


def test_rate_limit_answers_429_with_the_reset_time(stub):
    stub.rate_limit, stub.rate_window = 2, 30.0
    stub.add_account("key-au1")
    stub.add_account("key-uk1")
    assert [get(stub, "/patients").status_code for _ in range(3)] == [200, 200, 429]
    limited = get(stub, "/patients")
    reset = int(limited.headers["X-RateLimit-Reset"])
    start = stub.account("key-au1").window_start
    assert reset == math.ceil(start + 30)
    assert get(stub, "/patients", key="key-uk1").status_code == 200  # per key


def test_injected_failures(stub):
    stub.add_account("key-au1")
    stub.fail_next(503, count=2, path="/v1/patients")
    assert get(stub, "/businesses").status_code == 200  # another path is untouched
    assert [get(stub, "/patients").status_code for _ in range(3)] == [503, 503, 200]
    stub.fail_path("/v1/individual_appointments", 500)
    assert get(stub, "/individual_appointments").status_code == 500
    assert get(stub, "/individual_appointments/cancelled").status_code == 500
    stub.clear_failures()
    assert get(stub, "/individual_appointments").status_code == 200
    assert [r.status for r in stub.requests_to("/v1/patients")] == [503, 503, 200]
