"""Every write of the CareOS leads domain, one module per area (each `@transaction.atomic`, keyword-only,
with its audit event in the same transaction):

- `platforms`: partner platforms, their API keys (create, expire, revoke) and CareOS's RSA key pairs.
- `ingest`: `POST /api/leads/ingest`: decrypt and verify the phone, user + lead + payment + welcome SMS.
- `payouts/`: monthly payouts per partner (run, batches; backends in leads/payout_backends.py), payment
  status transitions.
"""
