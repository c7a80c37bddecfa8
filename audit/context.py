"""Transitional: the request annotations moved to core.context (core may not import audit)."""

from core.context import note_subjects, set_actor, set_organization

__all__ = ["note_subjects", "set_actor", "set_organization"]
