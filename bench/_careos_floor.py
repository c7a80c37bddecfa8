"""WSGI entry point of bench/careos_ingest.py's gunicorn: the project's application, plus the floor at
FLOOR_PATH served by the same workers.

The floor is the least any ingest must do per lead, under the real path's own conditions: the same
gunicorn workers (count and class), the same httpx load-client processes posting the same lead bodies
with one request in flight each, the same database with the same durability (a synchronous commit,
PostgreSQL's default, as the lead's transaction has), the same RSA key ring and key size. Per request:

- read the body and parse its JSON (any HTTP endpoint must);
- RSA-OAEP-SHA256 decrypt of `user_phone_encrypted` with the active keys (`leads.crypto.decrypt_phone`;
  the PEMs are parsed once per process, as the real path caches them; every decrypt is a real
  private-key operation, nothing is cached per ciphertext);
- one transaction inserting one row: a CareUser with its Fernet-encrypted phone and blind index;
- a fixed JSON answer.

No Django request/response, middleware, authentication, rate limiting, validation, hash check, replay
read, lead, payment, SMS, audit or access-log row. Every other path goes to config.wsgi.application.
"""

from __future__ import annotations

import json
import os

FLOOR_PATH = "/bench/careos-floor"
_ANSWER = b'{"success":true,"is_new_user":true}'
_state: dict = {}
_django: list = []


def _floor(environ, start_response):
    from django.db import transaction

    from core.encryption import blind_index
    from leads import crypto
    from leads.models import CareUser, PartnerPlatform

    if not _state:
        _state["platform"] = PartnerPlatform.objects.get(slug=os.environ["CAREOS_BENCH_PLATFORM"])
        _state["keys"] = crypto.active_private_keys()
    platform = _state["platform"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(length))
    phone = crypto.decrypt_phone(body["user_phone_encrypted"], _state["keys"])
    with transaction.atomic():
        CareUser.objects.create(
            phone=phone,
            phone_index=blind_index(phone, purpose="leads.user.phone"),
            source=f"{platform.slug}_floor",
            source_platform=platform,
        )
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(_ANSWER)))])
    return [_ANSWER]


def application(environ, start_response):
    if not _django:
        from config.wsgi import application as django_application  # django.setup(), on the first request

        _django.append(django_application)
    if environ.get("PATH_INFO") == FLOOR_PATH and environ.get("REQUEST_METHOD") == "POST":
        return _floor(environ, start_response)
    return _django[0](environ, start_response)
