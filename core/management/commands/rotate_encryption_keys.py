"""Re-encrypt every encrypted column under the first FIELD_ENCRYPTION_KEYS key.

Procedure: put the new key first (keep the old ones after it), deploy, run this command, then drop the
old keys. Rows are read and written with raw SQL on the one column, in batches ordered by primary key,
so save(), auto_now and signals never run. Each batch commits with its checkpoint in one transaction;
an interrupted run (Ctrl-C, crash) is resumed by running the command again with the same primary key.
Output shows counts, model and field names and a key fingerprint, never a value or a key.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, models, transaction

from core.actors import Actor
from core.auditing import audit_event
from core.encryption import (
    DecryptionError,
    encrypted_fields,
    is_under_primary_key,
    primary_key_fingerprint,
    reencrypt_str,
)
from core.models import KeyRotation
from core.time import utc_now

DEFAULT_BATCH_SIZE = 500


@dataclass
class BatchResult:
    scanned: int
    rotated: int
    last_pk: object | None  # JSON-ready checkpoint value; None when the batch was empty


@dataclass
class Column:
    model: type[models.Model]
    field: models.Field
    label: str = ""
    table: str = ""
    pk_column: str = ""
    column: str = ""

    def __post_init__(self) -> None:
        quote = connection.ops.quote_name
        self.label = f"{self.model._meta.label}.{self.field.name}"
        self.table = quote(self.model._meta.db_table)
        self.pk_column = quote(self.model._meta.pk.column)
        self.column = quote(self.field.column)

    # Checkpoints are stored as JSON; primary keys may be ints, UUIDs or strings.
    def checkpoint_to_json(self, raw_pk):
        value = self.model._meta.pk.to_python(raw_pk)
        return value if isinstance(value, int) else str(value)

    def checkpoint_to_db(self, stored):
        pk_field = self.model._meta.pk
        return pk_field.get_db_prep_value(pk_field.to_python(stored), connection)

    def count(self, after=None) -> int:
        sql = f"SELECT COUNT(*) FROM {self.table} WHERE {self.column} IS NOT NULL"  # noqa: S608
        params: list = []
        if after is not None:
            sql += f" AND {self.pk_column} <= %s"
            params.append(self.checkpoint_to_db(after))
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()[0]


def process_batch(column: Column, after, batch_size: int, *, dry_run: bool) -> BatchResult:
    """Rotate up to `batch_size` non-null values with pk > `after` (a stored checkpoint, or None).

    Runs inside the caller's transaction. Values the primary key already decrypts are left alone; a
    value no key decrypts raises CommandError naming model, field and pk (never the value).
    """
    sql = f"SELECT {column.pk_column}, {column.column} FROM {column.table} WHERE {column.column} IS NOT NULL"  # noqa: S608
    params: list = []
    if after is not None:
        sql += f" AND {column.pk_column} > %s"
        params.append(column.checkpoint_to_db(after))
    sql += f" ORDER BY {column.pk_column} LIMIT %s"
    params.append(batch_size)
    if connection.features.has_select_for_update and not dry_run:
        # Lock the batch so an application write between this read and our UPDATE is not lost.
        sql += " FOR UPDATE"

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()

    updates = []
    for raw_pk, token in rows:
        if isinstance(token, memoryview):
            token = token.tobytes().decode("ascii", errors="replace")
        if is_under_primary_key(token):
            continue
        try:
            new_token = reencrypt_str(token)
        except DecryptionError:
            raise CommandError(
                f"{column.label} pk={raw_pk}: no configured FIELD_ENCRYPTION_KEYS key decrypts this value. "
                "Add the key it was written under (after the primary key) and run the command again."
            ) from None
        updates.append((new_token, raw_pk, token))

    if updates and not dry_run:
        # The old token in the WHERE clause makes each write a compare-and-swap: a value changed since
        # it was read (by a writer on a backend without SELECT ... FOR UPDATE) is left as it is.
        update_sql = (
            f"UPDATE {column.table} SET {column.column} = %s "  # noqa: S608
            f"WHERE {column.pk_column} = %s AND {column.column} = %s"
        )
        with connection.cursor() as cursor:
            cursor.executemany(update_sql, updates)

    last_pk = column.checkpoint_to_json(rows[-1][0]) if rows else None
    return BatchResult(scanned=len(rows), rotated=len(updates), last_pk=last_pk)


class Command(BaseCommand):
    help = "Re-encrypt every encrypted column under the first FIELD_ENCRYPTION_KEYS key (resumable)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, dest="batch_size")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            dest="dry_run",
            help="Count what would be re-encrypted (and check every value decrypts); write nothing.",
        )

    def handle(self, *args, batch_size: int = DEFAULT_BATCH_SIZE, dry_run: bool = False, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        fingerprint = primary_key_fingerprint()
        columns = [Column(model, fld) for model, fld in encrypted_fields()]
        try:
            if dry_run:
                self._dry_run(columns, batch_size, fingerprint)
            else:
                self._rotate(columns, batch_size, fingerprint)
        except KeyboardInterrupt:
            raise CommandError(
                "Interrupted. Batches already done are saved; run the command again to resume.", returncode=130
            ) from None

    def _dry_run(self, columns: list[Column], batch_size: int, fingerprint: str) -> None:
        self.stdout.write(f"Dry run: primary key fingerprint {fingerprint}; nothing will be written.")
        total_pending = 0
        for column in columns:
            after, pending, scanned = None, 0, 0
            total = column.count()
            while True:
                result = process_batch(column, after, batch_size, dry_run=True)
                if not result.scanned:
                    break
                scanned += result.scanned
                pending += result.rotated
                after = result.last_pk
            self.stdout.write(f"{column.label}: {pending} of {total} rows would be re-encrypted")
            total_pending += pending
        self.stdout.write(f"Dry run done: {total_pending} rows would be re-encrypted.")

    def _rotate(self, columns: list[Column], batch_size: int, fingerprint: str) -> None:
        rotation = (
            KeyRotation.objects.filter(primary_key_fingerprint=fingerprint, completed_at__isnull=True)
            .order_by("-started_at", "-pk")
            .first()
        )
        resumed = rotation is not None
        if rotation is None:
            rotation = KeyRotation.objects.create(primary_key_fingerprint=fingerprint, started_at=utc_now())
            self.stdout.write(f"Rotating to primary key fingerprint {fingerprint} (run {rotation.pk}).")
        else:
            self.stdout.write(
                f"Resuming unfinished rotation run {rotation.pk} to primary key fingerprint {fingerprint}."
            )

        rotated_this_run = 0
        for column in columns:
            after = rotation.progress.get(column.label)
            total = column.count()
            done = column.count(after) if after is not None else 0
            if after is not None:
                self.stdout.write(f"{column.label}: resuming after checkpoint ({done}/{total} rows done)")
            while True:
                with transaction.atomic():
                    result = process_batch(column, after, batch_size, dry_run=False)
                    if not result.scanned:
                        break
                    after = result.last_pk
                    rotation.progress[column.label] = after
                    rotation.rows_rotated += result.rotated
                    rotation.save(update_fields=["progress", "rows_rotated"])
                rotated_this_run += result.rotated
                done += result.scanned
                self.stdout.write(f"{column.label}: {done}/{total} rows done ({result.rotated} re-encrypted)")
            if total == 0:
                self.stdout.write(f"{column.label}: 0/0 rows done")

        with transaction.atomic():
            rotation.completed_at = utc_now()
            rotation.save(update_fields=["completed_at"])
            audit_event(
                action="core.encryption_keys_rotated",
                actor=Actor.system("manage.py"),
                subject_type="key_rotation",
                subject_id=str(rotation.pk),
                metadata={
                    "primary_key_fingerprint": fingerprint,
                    "rows_rotated": rotation.rows_rotated,
                    "rows_rotated_this_run": rotated_this_run,
                    "columns": len(columns),
                    "resumed": resumed,
                },
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Done: {rotation.rows_rotated} rows re-encrypted across {len(columns)} columns "
                f"(primary key fingerprint {fingerprint})."
            )
        )
