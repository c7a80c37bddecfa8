"""Request validation for API views: one helper that runs an input serializer and answers 400.

`validated(InputSerializer, request.data)` returns the validated data, or raises the API's 400 with a
readable message naming the fields (every bad field by default; `first_only=True` names the first one,
as the LoveRescue partner API always has). The envelope (error body, code) is the view's API's.
"""

from __future__ import annotations

from typing import Any

from core.errors import ApiError


def flatten_errors(detail: Any) -> str:
    """DRF errors -> "field: message; other: message" (nested and list fields flattened)."""
    if isinstance(detail, dict):
        parts = []
        for name, errors in detail.items():
            text = flatten_errors(errors)
            parts.append(text if name == "non_field_errors" else f"{name}: {text}")
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(flatten_errors(item) for item in detail)
    return str(detail)


def first_error(errors: dict) -> str:
    """The first bad field only: "field: message", or "items[2]: message" for an item of a list field."""
    name, problems = next(iter(errors.items()))
    if isinstance(problems, dict):
        index, inner = next(iter(problems.items()))
        return f"{name}[{index}]: {' '.join(str(p) for p in inner)}"
    text = " ".join(str(p) for p in problems) if isinstance(problems, list) else str(problems)
    return text if name == "non_field_errors" else f"{name}: {text}"


def validated(
    serializer_class,
    data,
    *,
    context: dict | None = None,
    first_only: bool = False,
    code: str | None = None,
    message: str | None = None,
):
    """The serializer's validated data, or ApiError(400). `message` replaces the generated text (for
    APIs whose spec fixes the 400 message)."""
    serializer = serializer_class(data=data, context=context or {})
    if serializer.is_valid():
        return serializer.validated_data
    text = message or (first_error(serializer.errors) if first_only else flatten_errors(serializer.errors))
    raise ApiError(400, text or "Invalid request", code=code)
