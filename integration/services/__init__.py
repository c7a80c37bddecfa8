"""Every write of the LoveRescue domain, one module per area (each function `@transaction.atomic`,
keyword-only, writing its audit event in the same transaction):

- `auth`: the partner token exchange (`partner_authenticate`).
- `partners`: partners, credentials (create, rotate secret, revoke), suspension, BAA.
- `client_data`: what the client's app records (check-ins, ratios, activities, assessments, journal) and
  consent changes on therapist links; each write runs the alert rules that react to it.
- `assignments`: therapist tasks assigned by a partner.
- `alerts`: the alert rules (per episode), webhook publishing and therapist notifications.
- `reports`: session-prep reports, matchups and couple profiles.
"""
