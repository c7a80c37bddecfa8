"""core: no domain models; only bookkeeping: field-encryption key rotations and idempotency keys."""

from django.db import models

from core.encryption import EncryptedTextField
from core.time import utc_now


class KeyRotation(models.Model):
    """One run of `manage.py rotate_encryption_keys` (a resumed run continues its own row).

    `progress` maps "app_label.Model.field" to the last primary key done, so an interrupted run resumes
    from there. Only a fingerprint of the primary key is kept (first 16 hex of its sha256), never a key.
    """

    started_at = models.DateTimeField(default=utc_now, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    primary_key_fingerprint = models.CharField(max_length=16, db_index=True)
    rows_rotated = models.PositiveBigIntegerField(default=0)
    progress = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        state = "completed" if self.completed_at else "in progress"
        return f"Key rotation {self.primary_key_fingerprint} ({state}, {self.rows_rotated} rows)"

    @property
    def is_complete(self) -> bool:
        return self.completed_at is not None


class IdempotencyKey(models.Model):
    """A completed request made with an `Idempotency-Key` header (core.idempotency), kept 24 hours so a
    retry gets the same answer instead of a second effect.

    Scope: the API, the credential's principal (e.g. "user:42"), the organization and the key. The
    request's fingerprint (sha256 of method, path and body) tells a true retry from a reused key; the
    stored response (status and JSON body) is encrypted at rest, as it may hold patient data.
    """

    api = models.CharField(max_length=20)
    principal = models.CharField(max_length=100)
    organization = models.CharField(max_length=64, blank=True, default="")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = EncryptedTextField()
    created_at = models.DateTimeField(default=utc_now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api", "principal", "organization", "key"], name="core_idempotency_scope")
        ]

    def __str__(self) -> str:
        return f"Idempotency key {self.api}/{self.principal} ({self.response_status})"
