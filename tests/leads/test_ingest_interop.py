"""Interoperability: what a partner following the spec sends is accepted.

A phone encrypted and hashed by the spec's own Node.js code (`encryptPhoneForCareOS`, `hashPhone`, run
with `node`; never skipped in CI) and by Python `cryptography` both ingest. Every bad ciphertext gives
the same 400, byte for byte."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from leads.models import CareosKeyPair, CareUser, Lead, PartnerPayment
from leads.services.ingest import spec_phone_hash
from messaging.models import OutboundMessage
from messaging.tasks import send_message
from tests.conftest import skip_or_fail
from tests.leads.factories import INGEST, encrypt_phone, hash_phone, make_platform, rsa_pair, store_pair

pytestmark = pytest.mark.django_db

PHONE = "+14155550123"

# The spec's TypeScript (section "Encryption Process (BusinessOS Side)"), with only the type annotations
# removed, plus a main that reads the public key from a file and prints both values as JSON.
SPEC_JS = r"""
const crypto = require('crypto');
const fs = require('fs');

function encryptPhoneForCareOS(phone, careosPublicKey) {
  const buffer = Buffer.from(phone, 'utf8');
  const encrypted = crypto.publicEncrypt(
    {
      key: careosPublicKey,
      padding: crypto.constants.RSA_PKCS1_OAEP_PADDING,
      oaepHash: 'sha256',
    },
    buffer
  );
  return encrypted.toString('base64');
}

// Hash phone for verification
function hashPhone(phone) {
  return crypto
    .createHash('sha256')
    .update(phone + process.env.PHONE_HASH_SALT)
    .digest('hex');
}

const [publicKeyPath, ...phones] = process.argv.slice(2);
const careosPublicKey = fs.readFileSync(publicKeyPath, 'utf8');
const out = phones.map((phone) => ({
  user_phone_encrypted: encryptPhoneForCareOS(phone, careosPublicKey),
  user_phone_hash: hashPhone(phone),
}));
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr(send_message, "apply_async", lambda *args, **kwargs: None)


@pytest.fixture
def node() -> str:
    path = shutil.which("node")
    if not path:
        skip_or_fail("needs node (apt-get install nodejs) to run the spec's encryption code")
    return path


def run_spec_js(node: str, tmp_path, public_pem: str, salt: str, *phones: str) -> list[dict]:
    script = tmp_path / "partner.js"
    script.write_text(SPEC_JS)
    key_file = tmp_path / "careos_public.pem"
    key_file.write_text(public_pem)
    env = {"PATH": os.environ.get("PATH", ""), "PHONE_HASH_SALT": salt}
    completed = subprocess.run(
        [node, str(script), str(key_file), *phones], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def post(client, setup, body):
    return client.post(INGEST, json.dumps(body), content_type="application/json", **setup.headers())


def test_a_lead_encrypted_and_hashed_by_the_spec_node_code_ingests(client, node, tmp_path):
    setup = make_platform()
    [fields] = run_spec_js(node, tmp_path, setup.pair.public_pem, setup.platform.phone_hash_salt, PHONE)
    # Node's hash is the spec's hash, computed here independently.
    assert fields["user_phone_hash"] == spec_phone_hash(PHONE, setup.platform.phone_hash_salt)
    assert len(base64.b64decode(fields["user_phone_encrypted"])) == 256  # RSA-2048

    response = post(client, setup, setup.lead(**fields))
    assert response.status_code == 200, response.content
    assert response.json()["is_new_user"] is True
    assert CareUser.objects.get().phone == PHONE
    assert Lead.objects.get().public_id == response.json()["careos_lead_id"]


def test_node_national_and_international_formats_reach_the_same_user(client, node, tmp_path):
    setup = make_platform()
    national, spaced = run_spec_js(
        node, tmp_path, setup.pair.public_pem, setup.platform.phone_hash_salt, "(415) 555-0123", "+1 415 555 0123"
    )
    first = post(client, setup, setup.lead(**national, source_conversation_id="n-1"))
    second = post(client, setup, setup.lead(**spaced, source_conversation_id="n-2"))
    assert first.status_code == second.status_code == 200
    assert first.json()["careos_user_id"] == second.json()["careos_user_id"]
    assert CareUser.objects.get().phone == PHONE


def test_a_lead_encrypted_with_python_cryptography_ingests(client):
    setup = make_platform()
    public_key = serialization.load_pem_public_key(setup.pair.public_pem.encode())
    ciphertext = public_key.encrypt(
        PHONE.encode(), padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    )
    body = setup.lead(
        user_phone_encrypted=base64.b64encode(ciphertext).decode(),
        user_phone_hash=hash_phone(PHONE, setup.platform.phone_hash_salt),
    )
    response = post(client, setup, body)
    assert response.status_code == 200, response.content
    assert CareUser.objects.get().phone == PHONE


def test_node_and_python_ciphertexts_of_one_phone_are_one_user(client, node, tmp_path):
    setup = make_platform()
    [from_node] = run_spec_js(node, tmp_path, setup.pair.public_pem, setup.platform.phone_hash_salt, PHONE)
    a = post(client, setup, setup.lead(**from_node, source_conversation_id="node")).json()
    b = post(client, setup, setup.lead(phone=PHONE, source_conversation_id="python")).json()
    assert a["careos_user_id"] == b["careos_user_id"] and (a["is_new_user"], b["is_new_user"]) == (True, False)


def test_an_older_pair_still_decrypts_and_a_retired_one_does_not(client):
    setup = make_platform()
    older = setup.pair
    store_pair(rsa_pair(1))  # the rotation: a newer pair is handed out
    assert post(client, setup, setup.lead(source_conversation_id="old-key")).status_code == 200
    CareosKeyPair.objects.filter(pk=older.pk).update(retired_at=older.created_at)
    response = post(client, setup, setup.lead(source_conversation_id="retired-key"))
    assert (response.status_code, response.json()) == (400, {"error": "Failed to decrypt user data"})


def test_the_environment_private_key_decrypts(client, settings):
    setup = make_platform()
    env_pair = rsa_pair(2)  # not stored in the database
    settings.CAREOS_PRIVATE_KEY = env_pair.private_pem.replace("\n", "\\n")  # as a one-line .env value
    body = setup.lead(user_phone_encrypted=encrypt_phone(PHONE, env_pair.public_pem))
    assert post(client, setup, body).status_code == 200


# --- Bad ciphertexts: all the same 400 -----------------------------------------------------------------------


def _raw_b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _bad_ciphertexts(setup) -> dict[str, str]:
    public_pem = setup.pair.public_pem
    good = encrypt_phone(PHONE, public_pem)
    raw = base64.b64decode(good)
    public_key = serialization.load_pem_public_key(public_pem.encode())
    return {
        "wrong key": encrypt_phone(PHONE, rsa_pair(3).public_pem),
        "sha-1 oaep": encrypt_phone(PHONE, public_pem, hash_algorithm=hashes.SHA1()),
        "sha-256 oaep, sha-1 mgf1": _raw_b64(
            public_key.encrypt(
                PHONE.encode(), padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA256(), label=None)
            )
        ),
        "pkcs1 v1.5": _raw_b64(public_key.encrypt(PHONE.encode(), padding.PKCS1v15())),
        "truncated text": good[:-8],
        "truncated bytes": _raw_b64(raw[:-1]),
        "one more byte": _raw_b64(raw + b"\x00"),
        "flipped bit": _raw_b64(raw[:100] + bytes([raw[100] ^ 1]) + raw[101:]),
        "not base64": "not base64!!",
        "base64url": good.replace("+", "-").replace("/", "_"),
        "oversized": _raw_b64(os.urandom(4096)),
        "empty": "",
        "plaintext too long": encrypt_phone("+1" + "4" * 60, public_pem),
        "plaintext not utf-8": _raw_b64(
            public_key.encrypt(
                b"\xff\xfe\xfd", padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
            )
        ),
    }


def test_every_bad_ciphertext_gives_the_identical_400(client):
    setup = make_platform()
    bodies = set()
    for name, ciphertext in _bad_ciphertexts(setup).items():
        response = post(client, setup, setup.lead(user_phone_encrypted=ciphertext, source_conversation_id=name))
        assert response.status_code == 400, name
        assert response.json() == {"error": "Failed to decrypt user data"}, name
        bodies.add(response.content)
    assert bodies == {b'{"error": "Failed to decrypt user data"}'}  # byte for byte, no detail
    assert (
        Lead.objects.count(),
        CareUser.objects.count(),
        PartnerPayment.objects.count(),
        OutboundMessage.objects.count(),
    ) == (0, 0, 0, 0)
    # The control: the same request with a good ciphertext is accepted.
    assert post(client, setup, setup.lead()).status_code == 200
