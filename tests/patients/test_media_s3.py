"""Voice notes on an S3-compatible bucket (MARK_MEDIA_STORAGE=s3, django-storages): stored as private
objects under the prefix, served back through the signed URL view, deleted with the conversation. The
bucket is moto's in-process S3 (no network)."""

from __future__ import annotations

import boto3
import pytest
from django.test import Client
from moto import mock_aws

from patients.models import Message
from tests.patients.test_voice import _auth, _body, _fetch, _member, _patient, _send_voice, wav_bytes

BUCKET = "clinic-media"
PREFIX = "mark-media"

pytestmark = pytest.mark.django_db


@pytest.fixture
def http(frozen_ratelimit_clock):
    return Client(raise_request_exception=False)


@pytest.fixture
def s3(settings, monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        # The settings the production block builds for MARK_MEDIA_STORAGE=s3 (config/settings.py).
        settings.STORAGES = {
            **settings.STORAGES,
            "mark_media": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": BUCKET,
                    "location": PREFIX,
                    "region_name": "eu-west-1",
                    "default_acl": "private",
                    "file_overwrite": False,
                },
            },
        }
        yield client


def _objects(client) -> list[str]:
    return [item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_voice_note_is_a_private_object_served_only_through_the_signed_view(
    http, clinic, s3, django_capture_on_commit_callbacks
):
    owner = _member("owner", "owner", clinic)
    patient = _patient(clinic)
    response = _send_voice(http, owner, patient.public_id, wav_bytes(1.5))
    assert response.status_code == 201, response.content
    body = response.json()

    message = Message.objects.get(public_id=body["id"])
    key = f"{PREFIX}/{message.media.name}"
    assert _objects(s3) == [key]
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == wav_bytes(1.5)
    grants = s3.get_object_acl(Bucket=BUCKET, Key=key)["Grants"]
    assert all(grant["Grantee"].get("Type") == "CanonicalUser" for grant in grants)  # no public grant
    assert "amazonaws" not in body["content"] and body["content"].startswith("http://testserver/api/v1/")

    fetched = _fetch(http, body["content"])
    assert fetched.status_code == 200 and _body(fetched) == wav_bytes(1.5)

    with django_capture_on_commit_callbacks(execute=True):
        deleted = http.delete(f"/api/v1/conversations/{body['conversation_id']}", **_auth(owner))
    assert deleted.status_code == 200, deleted.content
    assert _objects(s3) == []


def test_s3_storage_needs_a_bucket():
    from tests.settings_process import start_settings

    refused = start_settings({"MARK_MEDIA_STORAGE": "s3", "MARK_MEDIA_S3_BUCKET": ""})
    assert refused.returncode != 0
    assert "MARK_MEDIA_STORAGE=s3 needs MARK_MEDIA_S3_BUCKET" in refused.stderr
    started = start_settings({"MARK_MEDIA_STORAGE": "s3", "MARK_MEDIA_S3_BUCKET": BUCKET})
    assert started.returncode == 0, started.stderr[-500:]
