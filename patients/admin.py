"""patients: admin (filled by its domain issue; shape per docs/architecture.md)."""
