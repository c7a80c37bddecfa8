"""core.idempotency: the Idempotency-Key mechanism on its own (DRF requests built here, a stand-in effect),
and on PostgreSQL two threads sending the same key at once: the second is refused with 409 while the first
runs, then replays its answer; the effect happens once."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test.client import encode_multipart
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory

from accounts.models import User
from core import idempotency
from core.domain import Invalid
from core.errors import ApiError
from core.models import IdempotencyKey, KeyRotation
from core.time import utc_now

pytestmark = pytest.mark.django_db

PATH = "/api/v1/things"
SECRET_TEXT = "Núria's result: negative"


def make_request(user, body=None, *, key: str | None = "key-1", path: str = PATH, raw=None, content_type=None):
    factory = APIRequestFactory()
    extra = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    if raw is not None:
        django_request = factory.generic("POST", path, raw, content_type=content_type, **extra)
    else:
        django_request = factory.post(path, body or {}, format="json", **extra)
    request = Request(django_request, parsers=[JSONParser(), MultiPartParser(), FormParser()])
    request.user = user
    return request


@pytest.fixture
def user():
    return User.objects.create_user(username="idem", password="x")


class Effect:
    """A write with a visible result (a KeyRotation row) and a call counter."""

    def __init__(self, status: int = 201):
        self.calls = 0
        self.status = status

    def __call__(self, prepared=None):
        self.calls += 1
        row = KeyRotation.objects.create(primary_key_fingerprint=f"run{self.calls}")
        return Response({"id": row.pk, "text": SECRET_TEXT, "prepared": prepared}, status=self.status)


def run(request, effect, **kwargs):
    kwargs.setdefault("organization", "org_a")
    return idempotency.idempotent(request, api="mark", run=effect, **kwargs)


def test_without_a_key_the_work_just_runs(user):
    effect = Effect()
    first = run(make_request(user, {"a": 1}, key=None), effect)
    second = run(make_request(user, {"a": 1}, key=None), effect)
    assert (first.status_code, second.status_code, effect.calls) == (201, 201, 2)
    assert not IdempotencyKey.objects.exists()


def test_the_same_key_and_body_replays_the_answer(user):
    effect = Effect()
    first = run(make_request(user, {"a": 1, "b": [1, 2]}), effect)
    again = run(make_request(user, {"b": [1, 2], "a": 1}), effect)  # same JSON, keys in another order
    assert effect.calls == 1 and KeyRotation.objects.count() == 1
    assert again.status_code == 201 and again.data == first.data
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    row = IdempotencyKey.objects.get()
    assert (row.api, row.principal, row.organization, row.key) == ("mark", f"user:{user.pk}", "org_a", "key-1")
    assert timedelta(hours=23, minutes=59) < row.expires_at - row.created_at <= timedelta(hours=24)


def test_another_body_method_path_is_422_naming_the_header(user):
    effect = Effect()
    run(make_request(user, {"a": 1}), effect)
    for request in (make_request(user, {"a": 2}), make_request(user, {"a": 1}, path="/api/v1/other")):
        with pytest.raises(ApiError) as refused:
            run(request, effect)
        assert (refused.value.status, refused.value.code) == (422, "idempotency_key_reused")
        assert refused.value.details == {"header": "Idempotency-Key"}
    assert effect.calls == 1


@pytest.mark.parametrize(
    "key", ["", "   ", "k" * 256, "ключ", "line\nbreak", "nul\x00"], ids=["empty", "blank", "256", "utf8", "nl", "nul"]
)
def test_malformed_keys_are_400_naming_the_header(user, key):
    with pytest.raises(ApiError) as refused:
        run(make_request(user, {"a": 1}, key=key), Effect())
    assert (refused.value.status, refused.value.details) == (400, {"header": "Idempotency-Key"})


@pytest.mark.parametrize("key", ["a", "k" * 255, "order 42/retry #1 ~!"], ids=["one", "255", "printable"])
def test_well_formed_keys_are_accepted(user, key):
    assert run(make_request(user, {"a": 1}, key=key), Effect()).status_code == 201
    assert IdempotencyKey.objects.get().key == key


def test_scope_is_api_principal_organization_and_key(user):
    effect = Effect()
    other = User.objects.create_user(username="other", password="x")
    run(make_request(user, {"a": 1}), effect)
    run(make_request(other, {"a": 1}), effect)  # another user
    run(make_request(user, {"a": 1}), effect, organization="org_b")  # another clinic
    idempotency.idempotent(make_request(user, {"a": 1}), api="routiq", run=effect, organization="org_a")
    assert effect.calls == 4 and IdempotencyKey.objects.count() == 4


def test_errors_are_not_stored_and_roll_back(user):
    def failing(_prepared):
        KeyRotation.objects.create(primary_key_fingerprint="half")
        raise Invalid("no", details={"field": "x"})

    with pytest.raises(Invalid):
        run(make_request(user, {"a": 1}), failing)
    assert not KeyRotation.objects.exists() and not IdempotencyKey.objects.exists()
    assert run(make_request(user, {"a": 1}), Effect()).status_code == 201  # the retry runs


def test_a_non_2xx_answer_is_not_stored(user):
    effect = Effect(status=409)
    run(make_request(user, {"a": 1}), effect)
    run(make_request(user, {"a": 1}), effect)
    assert effect.calls == 2 and not IdempotencyKey.objects.exists()


def test_prepare_runs_outside_only_when_not_a_replay(user):
    effect, prepared = Effect(), []

    def prepare():
        prepared.append(1)
        return "transcribed"

    first = run(make_request(user, {"a": 1}), effect, prepare=prepare)
    run(make_request(user, {"a": 1}), effect, prepare=prepare)
    assert first.data["prepared"] == "transcribed" and prepared == [1]


def test_expired_keys_are_ignored_replaced_and_purged(user):
    effect = Effect()
    run(make_request(user, {"a": 1}), effect)
    IdempotencyKey.objects.update(expires_at=utc_now() - timedelta(seconds=1))
    again = run(make_request(user, {"a": 2}), effect)  # expired: even another body runs, as new
    assert effect.calls == 2 and "Idempotent-Replayed" not in again.headers
    assert IdempotencyKey.objects.count() == 1
    run(make_request(user, {"a": 1}, key="key-2"), effect)
    IdempotencyKey.objects.filter(key="key-2").update(expires_at=utc_now() - timedelta(hours=1))
    assert idempotency.idempotency_purge() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["key-1"]


def test_the_stored_answer_is_encrypted_at_rest(user):
    run(make_request(user, {"a": 1}), Effect())
    with connection.cursor() as cursor:
        cursor.execute("SELECT response_body FROM core_idempotencykey")
        (raw,) = cursor.fetchone()
    assert SECRET_TEXT not in raw and "negative" not in raw
    assert json.loads(IdempotencyKey.objects.get().response_body)["text"] == SECRET_TEXT


def test_multipart_fingerprint_ignores_the_boundary_not_the_file(user):
    def multipart(boundary: str, content: bytes):
        from django.core.files.uploadedfile import SimpleUploadedFile

        fields = {"patient_id": "pat_1", "audio_file": SimpleUploadedFile("a.wav", content)}
        return make_request(
            user, raw=encode_multipart(boundary, fields), content_type=f"multipart/form-data; boundary={boundary}"
        )

    one = idempotency.request_fingerprint(multipart("boundary-one", b"RIFF-audio"))
    two = idempotency.request_fingerprint(multipart("boundary-two", b"RIFF-audio"))
    other = idempotency.request_fingerprint(multipart("boundary-one", b"RIFF-other"))
    assert one == two != other


# --- PostgreSQL: a concurrent duplicate --------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_concurrent_duplicate_is_409_then_replays(require_postgres):
    user = User.objects.create_user(username="idem-pg", password="x")
    started, release = threading.Event(), threading.Event()
    outcome: dict = {}

    def slow(_prepared):
        row = KeyRotation.objects.create(primary_key_fingerprint="slow")
        started.set()
        release.wait(30)  # in flight: the scope's advisory lock is held, nothing committed
        return Response({"id": row.pk}, status=201)

    def first():
        try:
            outcome["first"] = run(make_request(user, {"a": 1}), slow)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["first"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert started.wait(30), "the first request did not start"
        effect = Effect()
        with pytest.raises(ApiError) as refused:
            run(make_request(user, {"a": 1}), effect)
        assert (refused.value.status, refused.value.code) == (409, "idempotency_key_in_flight")
        assert refused.value.details == {"header": "Idempotency-Key"}
        assert effect.calls == 0
    finally:
        release.set()
        thread.join(30)
    assert getattr(outcome.get("first"), "status_code", None) == 201, outcome
    replay = run(make_request(user, {"a": 1}), Effect())
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.data == outcome["first"].data
    assert KeyRotation.objects.count() == 1 and IdempotencyKey.objects.count() == 1
