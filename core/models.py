"""core: no domain models; only the bookkeeping of field-encryption key rotations."""

from django.db import models

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
