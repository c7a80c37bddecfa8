"""webhooks: selectors (filled by its domain issue; shape per docs/architecture.md)."""
