"""Narrow list cells for the CareOS lists, so they fit a 1,400 px window with the filter sidebar."""

from __future__ import annotations

from django.utils.html import format_html

from core.admin import admin_datetime

# Long public ids are cut in lists (the full id is on hover, on the row's page, and what search takes).
SHORT_ID_CHARS = 12
# Slugs and category codes are cut at this length in lists, the full text on hover.
SHORT_TEXT_CHARS = 14


def short_id(public_id: str) -> str:
    """`lead_01J9ZK…` with the full id on hover."""
    return short_text(public_id, SHORT_ID_CHARS)


def short_text(text: str, length: int = SHORT_TEXT_CHARS) -> str:
    text = str(text)
    if len(text) <= length + 1:
        return text
    return format_html('<span title="{}">{}…</span>', text, text[:length])


def admin_date(value) -> str:
    """The day of a timestamp (staff's zone) for narrow list columns; `admin_datetime` on the row's page."""
    return admin_datetime(value)[:10] if value is not None else "-"
