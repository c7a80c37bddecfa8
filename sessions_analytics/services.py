"""sessions_analytics: services (filled by its domain issue; shape per docs/architecture.md)."""
