"""BusinessOS (partner) categories -> CareOS categories, exactly the spec's "Category mapping" table.

Keys are the partner's values, matched case-insensitively after trimming. A value the table does not
list maps to `DEFAULT_CATEGORY` ("other"); the partner's own value is kept on the lead
(`Lead.source_category`) so staff can see what was sent and extend the table. See docs/careos.md.
"""

from __future__ import annotations

DEFAULT_CATEGORY = "other"

# CareOS category -> the partner values that map to it (spec table, row by row).
_TABLE: dict[str, tuple[str, ...]] = {
    "general_healthcare": ("healthcare", "health", "medical"),
    "caregiver_hiring": ("caregiver", "caregiver_hiring", "staffing_hiring"),
    "telehealth": ("doctor", "telehealth", "consulting_urgent"),
    "rx_management": ("medication", "rx_management", "prescription"),
    "mental_health": ("mental_health", "therapy", "counseling"),
    "home_health": ("home_health", "nursing"),
    "medical_equipment": ("medical_equipment", "equipment_supply"),
}

CATEGORY_MAP: dict[str, str] = {source: careos for careos, sources in _TABLE.items() for source in sources}

CAREOS_CATEGORIES: tuple[str, ...] = (*_TABLE, DEFAULT_CATEGORY)


def careos_category(source_category: str) -> str:
    """The CareOS category for a partner's category value (unlisted -> "other")."""
    return CATEGORY_MAP.get(source_category.strip().lower(), DEFAULT_CATEGORY)
