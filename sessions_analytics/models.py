"""sessions_analytics: models (filled by its domain issue; shape per docs/architecture.md)."""
