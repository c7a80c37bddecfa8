"""manage.py rotate_encryption_keys: re-encrypt under the new first key, resumably."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from audit.models import AuditEvent
from core.encryption import DecryptionError, decrypt_str, key_fingerprint
from core.management.commands import rotate_encryption_keys as rotate_module
from core.models import KeyRotation
from core.selectors import last_completed_rotation
from tests.encryption_app.models import SecretNote

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
KEY_C = Fernet.generate_key().decode()
TABLE = SecretNote._meta.db_table


def raw_bodies() -> dict[int, str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, body FROM {connection.ops.quote_name(TABLE)} ORDER BY id")
        return dict(cursor.fetchall())


def set_raw_body(note_id: int, token: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {connection.ops.quote_name(TABLE)} SET body = %s WHERE id = %s", [token, note_id])


def decrypts_with(key: str, token: str) -> bool:
    """True if `key` alone decrypts `token` (either stored format)."""
    with override_settings(FIELD_ENCRYPTION_KEYS=[key]):
        try:
            decrypt_str(token)
        except DecryptionError:
            return False
    return True


def is_current_format(token: str) -> bool:
    return token.startswith("$g1$")


@pytest.fixture
def notes_under_a(db, settings):
    settings.FIELD_ENCRYPTION_KEYS = [KEY_A]
    notes = [SecretNote.objects.create(body=f"note {i}", phone=f"+6140000000{i}" if i % 2 else None) for i in range(5)]
    assert all(decrypts_with(KEY_A, token) for token in raw_bodies().values())
    return notes


def run(**options) -> str:
    out = StringIO()
    call_command("rotate_encryption_keys", stdout=out, **options)
    return out.getvalue()


def test_rotation_lets_the_old_key_be_dropped(notes_under_a, settings):
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    output = run(batch_size=2)

    raw = raw_bodies()
    assert all(decrypts_with(KEY_B, token) for token in raw.values())
    assert not any(decrypts_with(KEY_A, token) for token in raw.values())

    settings.FIELD_ENCRYPTION_KEYS = [KEY_B]  # old key dropped
    for note in notes_under_a:
        loaded = SecretNote.objects.get(pk=note.pk)
        assert loaded.body == note.body
        assert loaded.phone == note.phone

    rotation = last_completed_rotation()
    assert rotation is not None
    assert rotation.primary_key_fingerprint == key_fingerprint(KEY_B)
    assert rotation.rows_rotated == 5 + 2  # five bodies, two non-null phones
    assert rotation.progress["encryption_app.SecretNote.body"] == notes_under_a[-1].pk
    assert "encryption_app.SecretNote.body: 5/5 rows done" in output

    event = AuditEvent.objects.get(action="core.encryption_keys_rotated")
    assert event.actor_type == "system" and event.actor_id == "manage.py"
    assert event.metadata["primary_key_fingerprint"] == key_fingerprint(KEY_B)
    assert event.metadata["rows_rotated"] == 7

    # Nothing secret in the output: no plaintext, no key.
    for secret in [KEY_A, KEY_B, "note 1", "+61400000001"]:
        assert secret not in output


def test_rows_already_under_primary_are_skipped(notes_under_a, settings):
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    already = SecretNote.objects.create(body="written after the deploy")  # encrypted under B already
    before = raw_bodies()[already.pk]
    run(batch_size=10)
    assert raw_bodies()[already.pk] == before  # untouched, byte for byte
    assert last_completed_rotation().rows_rotated == 7


def test_rerun_after_completion_rotates_nothing(notes_under_a, settings):
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    run(batch_size=2)
    after_first = raw_bodies()
    run(batch_size=2)
    assert raw_bodies() == after_first
    rotations = list(KeyRotation.objects.order_by("pk"))
    assert len(rotations) == 2
    assert rotations[1].rows_rotated == 0 and rotations[1].completed_at is not None


def test_interrupted_rotation_resumes_from_checkpoint(notes_under_a, settings, monkeypatch):
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    original = rotate_module.process_batch
    calls: list[tuple[str, object]] = []

    def crash_on_second_batch(column, after, batch_size, *, dry_run):
        calls.append((column.label, after))
        # Other apps' encrypted columns are empty here; crash on this column's second batch.
        if [label for label, _ in calls].count("encryption_app.SecretNote.body") == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the run
        return original(column, after, batch_size, dry_run=dry_run)

    monkeypatch.setattr(rotate_module, "process_batch", crash_on_second_batch)
    with pytest.raises(CommandError, match="run the command again to resume"):
        run(batch_size=2)

    rotation = KeyRotation.objects.get()
    assert rotation.completed_at is None
    first_batch_last_pk = notes_under_a[1].pk
    assert rotation.progress == {"encryption_app.SecretNote.body": first_batch_last_pk}
    assert rotation.rows_rotated == 2
    raw = raw_bodies()
    assert [decrypts_with(KEY_B, raw[n.pk]) for n in notes_under_a] == [True, True, False, False, False]

    calls.clear()

    def record(column, after, batch_size, *, dry_run):
        calls.append((column.label, after))
        return original(column, after, batch_size, dry_run=dry_run)

    monkeypatch.setattr(rotate_module, "process_batch", record)
    output = run(batch_size=2)

    body_calls = [after for label, after in calls if label == "encryption_app.SecretNote.body"]
    assert body_calls[0] == first_batch_last_pk  # resumed after the checkpoint, not from the start
    assert "Resuming unfinished rotation" in output
    assert "encryption_app.SecretNote.body: resuming after checkpoint (2/5 rows done)" in output

    rotation.refresh_from_db()
    assert KeyRotation.objects.count() == 1  # the same run finished, no new one
    assert rotation.completed_at is not None
    assert rotation.rows_rotated == 7

    settings.FIELD_ENCRYPTION_KEYS = [KEY_B]
    assert [SecretNote.objects.get(pk=n.pk).body for n in notes_under_a] == [n.body for n in notes_under_a]


def test_crash_mid_batch_rolls_back_that_batch_only(notes_under_a, settings, monkeypatch):
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    original_reencrypt = rotate_module.reencrypt_str
    count = {"n": 0}

    def crash_on_fourth_value(token):
        count["n"] += 1
        if count["n"] == 4:
            raise RuntimeError("simulated crash")
        return original_reencrypt(token)

    monkeypatch.setattr(rotate_module, "reencrypt_str", crash_on_fourth_value)
    with pytest.raises(RuntimeError):
        run(batch_size=2)
    raw = raw_bodies()
    # Batch 1 (rows 0-1) committed; batch 2 (rows 2-3) rolled back entirely, row 2 included.
    assert [decrypts_with(KEY_B, raw[n.pk]) for n in notes_under_a] == [True, True, False, False, False]
    assert KeyRotation.objects.get().progress == {"encryption_app.SecretNote.body": notes_under_a[1].pk}


def test_undecryptable_value_aborts_naming_model_field_and_pk(notes_under_a, settings):
    bad = notes_under_a[3]
    set_raw_body(bad.pk, Fernet(KEY_C.encode()).encrypt(b"written under an unknown key").decode())
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    with pytest.raises(CommandError) as excinfo:
        run(batch_size=2)
    message = str(excinfo.value)
    assert "encryption_app.SecretNote.body" in message
    assert f"pk={bad.pk}" in message
    assert "unknown key" not in message
    assert KeyRotation.objects.get().completed_at is None
    assert not AuditEvent.objects.filter(action="core.encryption_keys_rotated").exists()


def test_dry_run_writes_nothing(notes_under_a, settings):
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    before = raw_bodies()
    output = run(batch_size=2, dry_run=True)
    assert raw_bodies() == before
    assert not KeyRotation.objects.exists()
    assert "encryption_app.SecretNote.body: 5 of 5 rows would be re-encrypted" in output
    assert "encryption_app.SecretNote.phone: 2 of 2 rows would be re-encrypted" in output


def test_batch_size_must_be_positive(db):
    with pytest.raises(CommandError, match="batch-size"):
        run(batch_size=0)


def test_fernet_values_are_rewritten_in_the_current_format(notes_under_a, settings):
    # Values written before the AES-GCM format: Fernet tokens under the old key A and under the primary B.
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    old_a, old_b = notes_under_a[0], notes_under_a[1]
    set_raw_body(old_a.pk, Fernet(KEY_A.encode()).encrypt(old_a.body.encode()).decode())
    set_raw_body(old_b.pk, Fernet(KEY_B.encode()).encrypt(old_b.body.encode()).decode())
    assert SecretNote.objects.get(pk=old_a.pk).body == old_a.body  # old values stay readable
    assert SecretNote.objects.get(pk=old_b.pk).body == old_b.body

    assert "encryption_app.SecretNote.body: 5 of 5 rows would be re-encrypted" in run(dry_run=True)
    run(batch_size=2)

    raw = raw_bodies()
    assert all(is_current_format(token) for token in raw.values())
    assert all(decrypts_with(KEY_B, token) and not decrypts_with(KEY_A, token) for token in raw.values())
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B]
    assert [SecretNote.objects.get(pk=n.pk).body for n in notes_under_a] == [n.body for n in notes_under_a]
    # A Fernet token under the primary key is due too (format), one in the current format is not.
    assert last_completed_rotation().rows_rotated == 7
    assert run(batch_size=2).count("(0 re-encrypted)") >= 1
    assert KeyRotation.objects.order_by("-pk").first().rows_rotated == 0


def test_tampered_current_format_value_aborts_rotation(notes_under_a, settings):
    bad = notes_under_a[2]
    token = raw_bodies()[bad.pk]
    set_raw_body(bad.pk, token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1])
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    with pytest.raises(CommandError, match=f"pk={bad.pk}"):
        run(batch_size=10)
