"""Where Mark keeps audio (voice notes): the `mark_media` storage (settings.STORAGES), a private
filesystem directory by default or an S3-compatible bucket by setting. Never served as static or media
files: the API hands out signed, expiring URLs to a view that checks them (docs/mark.md)."""

from __future__ import annotations

import uuid

from django.core.files.storage import storages


def media_storage():
    return storages["mark_media"]


def media_upload_to(instance, filename: str) -> str:
    """`voice/<organization pk>/<random>.<ext>`: nothing in a path names the patient or the file's
    original name."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    if not extension.isalnum() or len(extension) > 5:
        extension = "bin"
    return f"voice/{instance.organization_id}/{uuid.uuid4().hex}.{extension}"
