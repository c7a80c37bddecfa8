"""core: no domain models (encryption key rotation bookkeeping lives here, added by its issue)."""
