"""core.encryption: encrypted fields, blind indexes, key handling."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from core.encryption import (
    DecryptionError,
    EncryptedLookupError,
    blind_index,
    decrypt_str,
    encrypt_str,
    encrypted_fields,
    key_fingerprint,
    primary_key_fingerprint,
)
from tests.encryption_app.models import SecretNote

PHONE = "+61400111222"
BODY = "Patient reports feeling better after session 3."


def raw_column(note_id: int, column: str) -> str | None:
    table = connection.ops.quote_name(SecretNote._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {connection.ops.quote_name(column)} FROM {table} WHERE id = %s", [note_id])
        return cursor.fetchone()[0]


def test_encrypt_decrypt_round_trip_and_random_tokens():
    token = encrypt_str(BODY)
    assert token != BODY
    assert BODY not in token
    assert decrypt_str(token) == BODY
    assert encrypt_str(BODY) != token  # random IV: equal plaintexts, different tokens
    assert decrypt_str(encrypt_str("")) == ""
    assert decrypt_str(encrypt_str("héllo ✓")) == "héllo ✓"


def test_decrypt_with_unknown_key_raises_without_value(settings):
    token = encrypt_str(BODY)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(DecryptionError) as excinfo:
        decrypt_str(token)
    assert token not in str(excinfo.value)


def test_setting_change_is_picked_up(settings):
    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [key_a]
    token_a = encrypt_str(BODY)
    assert primary_key_fingerprint() == key_fingerprint(key_a)
    settings.FIELD_ENCRYPTION_KEYS = [key_b, key_a]
    assert primary_key_fingerprint() == key_fingerprint(key_b)
    assert decrypt_str(token_a) == BODY  # old key still decrypts
    token_b = encrypt_str(BODY)
    assert Fernet(key_b.encode()).decrypt(token_b.encode()) == BODY.encode()  # new key encrypts


def test_invalid_key_is_refused_without_echoing_it(settings):
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    with pytest.raises(ImproperlyConfigured) as excinfo:
        encrypt_str(BODY)
    assert "not-a-fernet-key" not in str(excinfo.value)


def test_empty_key_list_is_refused(settings):
    settings.FIELD_ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured):
        encrypt_str(BODY)


def test_fingerprint_is_not_the_key():
    key = Fernet.generate_key().decode()
    fingerprint = key_fingerprint(key)
    assert len(fingerprint) == 16
    assert fingerprint not in key
    assert fingerprint != key_fingerprint(Fernet.generate_key().decode())


def test_model_round_trip(db):
    note = SecretNote.objects.create(body=BODY, phone=PHONE, extra={"mood": 4, "tags": ["a"]})
    loaded = SecretNote.objects.get(pk=note.pk)
    assert loaded.body == BODY
    assert loaded.phone == PHONE
    assert loaded.extra == {"mood": 4, "tags": ["a"]}
    assert note.body == BODY  # saving does not replace the instance's value with a token


def test_none_and_empty_string(db):
    note = SecretNote.objects.create(body="", phone=None, extra=None)
    loaded = SecretNote.objects.get(pk=note.pk)
    assert loaded.body == ""
    assert loaded.phone is None
    assert loaded.extra is None
    assert raw_column(note.pk, "phone") is None
    assert raw_column(note.pk, "body") not in ("", None)  # empty string is encrypted too
    assert SecretNote.objects.filter(phone__isnull=True).count() == 1
    assert SecretNote.objects.filter(phone__isnull=False).count() == 0


def test_stored_column_is_not_plaintext(db):
    note = SecretNote.objects.create(body=BODY, phone=PHONE, extra={"secret": "value-xyz"})
    raw_body, raw_phone, raw_extra = (raw_column(note.pk, c) for c in ("body", "phone", "extra"))
    assert BODY not in raw_body and PHONE not in raw_phone and "value-xyz" not in raw_extra
    assert decrypt_str(raw_body) == BODY
    assert decrypt_str(raw_phone) == PHONE


def test_queryset_update_encrypts(db):
    note = SecretNote.objects.create(body=BODY)
    SecretNote.objects.filter(pk=note.pk).update(body="changed text")
    assert "changed text" not in raw_column(note.pk, "body")
    assert SecretNote.objects.get(pk=note.pk).body == "changed text"


@pytest.mark.parametrize(
    "lookup",
    [{"body": BODY}, {"phone__exact": PHONE}, {"body__icontains": "x"}, {"phone__in": [PHONE]}, {"body__gt": "a"}],
)
def test_filter_on_encrypted_field_raises(db, lookup):
    SecretNote.objects.create(body=BODY, phone=PHONE)
    with pytest.raises(EncryptedLookupError, match="blind index"):
        list(SecretNote.objects.filter(**lookup))


def test_transform_on_encrypted_field_raises(db):
    with pytest.raises(EncryptedLookupError):
        list(SecretNote.objects.filter(body__lower="x"))


def test_blind_index_stable_keyed_and_purpose_separated(settings):
    first = blind_index(PHONE, purpose="tests.note.phone")
    assert first == blind_index(PHONE, purpose="tests.note.phone")
    assert len(first) == 64 and int(first, 16) >= 0
    assert PHONE not in first
    assert blind_index("+61400111223", purpose="tests.note.phone") != first
    assert blind_index(PHONE, purpose="leads.lead.phone") != first
    settings.BLIND_INDEX_KEY = "another-blind-index-key"
    assert blind_index(PHONE, purpose="tests.note.phone") != first


def test_blind_index_rejects_bad_input(settings):
    with pytest.raises(TypeError):
        blind_index(None, purpose="tests.note.phone")
    with pytest.raises(ValueError):
        blind_index(PHONE, purpose="")
    settings.BLIND_INDEX_KEY = ""
    with pytest.raises(ImproperlyConfigured):
        blind_index(PHONE, purpose="tests.note.phone")


def test_lookup_by_blind_index(db):
    def index(phone):
        return blind_index(phone, purpose="tests.note.phone")

    wanted = SecretNote.objects.create(body="one", phone=PHONE, phone_index=index(PHONE))
    SecretNote.objects.create(body="two", phone="+61400999888", phone_index=index("+61400999888"))
    found = SecretNote.objects.filter(phone_index=index(PHONE))
    assert [n.pk for n in found] == [wanted.pk]
    assert found[0].phone == PHONE
    assert not SecretNote.objects.filter(phone_index=index("+61400000000")).exists()


def test_encrypted_fields_lists_the_test_app_columns():
    found = {(model._meta.label, field.name) for model, field in encrypted_fields()}
    assert {
        ("encryption_app.SecretNote", "body"),
        ("encryption_app.SecretNote", "phone"),
        ("encryption_app.SecretNote", "extra"),
    } <= found
    assert ("encryption_app.SecretNote", "phone_index") not in found
