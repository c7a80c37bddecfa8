"""Where partners' signed BAAs are kept: the `private_media` storage (settings.STORAGES), a directory
outside the code tree (PRIVATE_MEDIA_ROOT) that no URL serves. Staff read a document only through the
partner admin's download view, which checks permission and audits the download (docs/loverescue.md)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.files.storage import FileSystemStorage, storages
from django.utils.functional import cached_property


class PrivateFileSystemStorage(FileSystemStorage):
    """A filesystem storage under PRIVATE_MEDIA_ROOT (unless given a location) with no public URL:
    `url()` refuses, so no template or widget can ever link a file straight from a static/media route
    (they must link the audited view instead). Paths are joined with `safe_join`: a stored name that
    climbs out of the root ("../x") raises SuspiciousFileOperation instead of being read."""

    @cached_property
    def base_location(self):
        return self._value_or_setting(self._location, settings.PRIVATE_MEDIA_ROOT)

    def _clear_cached_properties(self, setting, **kwargs):
        super()._clear_cached_properties(setting, **kwargs)
        if setting == "PRIVATE_MEDIA_ROOT":  # tests point it elsewhere
            self.__dict__.pop("base_location", None)
            self.__dict__.pop("location", None)

    def url(self, name):
        raise ValueError("Private media has no public URL; link the staff view that serves it.")


def private_media_storage():
    """The `private_media` storage (settings.STORAGES), for the model field (a callable: the backend
    is chosen by settings, not in migrations)."""
    return storages["private_media"]


def baa_document_upload_to(instance, filename: str) -> str:
    """`baa/<random>.pdf`: never the uploaded name (it may name a person, or try a path)."""
    return f"baa/{uuid.uuid4().hex}.pdf"
