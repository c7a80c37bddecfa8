"""Reads over core's own tables."""

from __future__ import annotations

from core.models import KeyRotation


def last_completed_rotation() -> KeyRotation | None:
    """The most recently completed key rotation, or None if none has completed."""
    return KeyRotation.objects.filter(completed_at__isnull=False).order_by("-completed_at", "-pk").first()


def unfinished_rotations():
    """Rotations started and not completed (interrupted, or running now), newest first."""
    return KeyRotation.objects.filter(completed_at__isnull=True).order_by("-started_at", "-pk")
