"""Read-only admin for the audit tables (filled by the audit admin work)."""
