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
    decrypt_many,
    decrypt_str,
    encrypt_str,
    encrypted_fields,
    is_under_primary_key,
    key_fingerprint,
    primary_key_fingerprint,
    reencrypt_str,
    seal,
    unseal,
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
    assert decrypt_str(token_b) == BODY
    settings.FIELD_ENCRYPTION_KEYS = [key_b]
    assert decrypt_str(token_b) == BODY  # new key encrypts
    settings.FIELD_ENCRYPTION_KEYS = [key_a]
    with pytest.raises(DecryptionError):
        decrypt_str(token_b)


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


# --- Stored format: AES-256-GCM ("$g1$<key id>$..."), Fernet tokens from before still read ----------------


def tampered(token: str, position: int) -> str:
    replacement = "A" if token[position] != "A" else "B"
    return token[:position] + replacement + token[position + 1 :]


def test_new_values_use_the_gcm_format_with_the_primary_key_id(settings):
    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [key_a, key_b]
    token = encrypt_str(BODY)
    prefix, version, key_id, body = token.split("$")
    assert (prefix, version, len(key_id)) == ("", "g1", 8)
    assert not token.startswith("gAAAA")
    assert encrypt_str(BODY).split("$")[2] == key_id  # the primary key's id, every time
    settings.FIELD_ENCRYPTION_KEYS = [key_b, key_a]
    assert encrypt_str(BODY).split("$")[2] != key_id  # another primary, another id
    assert decrypt_str(token) == BODY  # key_a still decrypts as the second key
    # 12-byte nonce + ciphertext + 16-byte tag, url-safe base64 without padding.
    assert len(body) == -(-(12 + len(BODY.encode()) + 16) * 4 // 3)
    assert key_id not in key_a and key_id not in key_b


def test_fernet_values_from_before_still_decrypt(settings):
    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [key_b, key_a]
    for key in (key_a, key_b):
        old = Fernet(key.encode()).encrypt("héllo ✓".encode()).decode()
        assert old.startswith("gAAAAA")
        assert decrypt_str(old) == "héllo ✓"
        assert decrypt_many([old, None]) == ["héllo ✓", None]
        assert not is_under_primary_key(old)  # due for rotation into the current format
        rotated = reencrypt_str(old)
        assert rotated.startswith("$g1$") and decrypt_str(rotated) == "héllo ✓"
        assert is_under_primary_key(rotated)


def test_old_fernet_row_reads_through_the_model(db):
    note = SecretNote.objects.create(body="placeholder")
    old = Fernet(settings_keys()[0].encode()).encrypt(BODY.encode()).decode()
    table = connection.ops.quote_name(SecretNote._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET body = %s WHERE id = %s", [old, note.pk])
    assert SecretNote.objects.get(pk=note.pk).body == BODY
    assert raw_column(SecretNote.objects.create(body=BODY).pk, "body").startswith("$g1$")


def settings_keys() -> list[str]:
    from django.conf import settings

    keys = settings.FIELD_ENCRYPTION_KEYS
    return [keys] if isinstance(keys, str) else list(keys)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda t: tampered(t, len(t) - 3), id="ciphertext-or-tag"),
        pytest.param(lambda t: tampered(t, 14), id="nonce"),
        pytest.param(lambda t: tampered(t, 5), id="key-id"),
        pytest.param(lambda t: t.replace("$g1$", "$g2$", 1), id="version"),
        pytest.param(lambda t: t[:-6], id="truncated"),
        pytest.param(lambda t: t[:13] + "$" + t[13:], id="extra-separator"),
        pytest.param(lambda t: t[:13] + "é" + t[14:], id="non-ascii"),
        pytest.param(lambda t: t[:13], id="no-body"),
        pytest.param(lambda t: t[:4], id="prefix-only"),
        pytest.param(lambda t: "gAAAAA" + t, id="not-fernet-either"),
    ],
)
def test_tampered_values_are_refused(damage):
    token = encrypt_str(BODY)
    bad = damage(token)
    assert bad != token
    with pytest.raises(DecryptionError) as excinfo:
        decrypt_str(bad)
    assert BODY not in str(excinfo.value)
    with pytest.raises(DecryptionError):
        decrypt_many([token, bad])
    assert not is_under_primary_key(bad)
    with pytest.raises(DecryptionError):
        reencrypt_str(bad)


def test_tampered_fernet_value_is_refused():
    old = Fernet(settings_keys()[0].encode()).encrypt(BODY.encode()).decode()
    with pytest.raises(DecryptionError):
        decrypt_str(tampered(old, len(old) - 5))


def test_value_under_a_dropped_key_is_refused(settings):
    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [key_a]
    token = encrypt_str(BODY)
    settings.FIELD_ENCRYPTION_KEYS = [key_b]
    with pytest.raises(DecryptionError):
        decrypt_str(token)
    assert not is_under_primary_key(token)
    settings.FIELD_ENCRYPTION_KEYS = [key_b, key_a]
    assert not is_under_primary_key(token)  # decrypts, but not under the primary key: due for rotation
    assert is_under_primary_key(reencrypt_str(token))


def test_two_keys_with_the_same_key_id_are_both_tried(settings, monkeypatch):
    from core import encryption

    real_derive = encryption._derive
    monkeypatch.setattr(encryption, "_derive", lambda raw: ("sameid00", real_derive(raw)[1]))
    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [key_a]
    token_a = encrypt_str(BODY)
    settings.FIELD_ENCRYPTION_KEYS = [key_b, key_a]
    assert decrypt_str(token_a) == BODY
    assert not is_under_primary_key(token_a)  # the id matches the primary's, the key does not


def test_decrypt_many_matches_decrypt_str():
    tokens = [encrypt_str(f"client{i}@example.com") for i in range(5)] + [None, encrypt_str("")]
    assert decrypt_many(tokens) == [None if t is None else decrypt_str(t) for t in tokens]


# --- Sealed bytes (core.body_cache keeps cached bodies with personal data sealed) ---------------------


def test_sealed_bytes_open_only_under_the_same_context(settings):
    sealed = seal(BODY.encode(), context=b"key-1")
    assert BODY.encode() not in sealed
    assert unseal(sealed, context=b"key-1") == BODY.encode()
    assert seal(BODY.encode(), context=b"key-1") != sealed  # random nonce
    with pytest.raises(DecryptionError):
        unseal(sealed, context=b"key-2")


@pytest.mark.parametrize("damage", ["flip_last", "flip_header", "truncate", "empty", "not_bytes"])
def test_damaged_sealed_bytes_are_refused(damage):
    sealed = bytearray(seal(BODY.encode(), context=b"k"))
    if damage == "flip_last":
        sealed[-1] ^= 1
    elif damage == "flip_header":
        sealed[3] ^= 1
    elif damage == "truncate":
        sealed = sealed[:20]
    elif damage == "empty":
        sealed = bytearray()
    value = BODY if damage == "not_bytes" else bytes(sealed)
    with pytest.raises(DecryptionError):
        unseal(value, context=b"k")


def test_sealed_bytes_follow_key_rotation(settings):
    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [key_a]
    sealed = seal(b"x", context=b"k")
    settings.FIELD_ENCRYPTION_KEYS = [key_b, key_a]
    assert unseal(sealed, context=b"k") == b"x"  # an old key still opens what it sealed
    settings.FIELD_ENCRYPTION_KEYS = [key_b]
    with pytest.raises(DecryptionError):
        unseal(sealed, context=b"k")  # dropped: the entry is a miss, never a wrong body
