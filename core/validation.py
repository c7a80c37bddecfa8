"""Request validation for API views: one helper that runs an input serializer and answers 400.

`validated(InputSerializer, request.data)` returns the validated data, or raises the API's 400 with a
readable message naming the fields (every bad field by default; `first_only=True` names the first one,
as the LoveRescue partner API always has). The envelope (error body, code) is the view's API's.
"""

from __future__ import annotations

from core.errors import ApiError, first_error, flatten_errors


def validated(
    serializer_class,
    data,
    *,
    context: dict | None = None,
    first_only: bool = False,
    code: str | None = None,
    field_details: bool = False,
):
    """The serializer's validated data, or ApiError(400). `field_details` adds the per-field errors as
    `details` (for APIs whose error body has a details member)."""
    serializer = serializer_class(data=data, context=context or {})
    if serializer.is_valid():
        return serializer.validated_data
    text = first_error(serializer.errors) if first_only else flatten_errors(serializer.errors)
    raise ApiError(400, text or "Invalid request", code=code, details=serializer.errors if field_details else None)
