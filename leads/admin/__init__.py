"""CareOS leads admin (staff side), one module per job; importing this package registers them all:

- `partners`: partner platforms, their API keys (shown once) and CareOS's RSA key pairs;
- `leads`: leads and CareOS users, read-only, masked phones, exact phone search by blind index;
- `payouts`: partner payments (dispute / cancel / reinstate, run payouts now) and payout batches
  (mark paid, cancel, CSV export).
"""

from leads.admin import leads, partners, payouts  # noqa: F401  registers the ModelAdmins
from leads.admin.leads import phone_search_index

__all__ = ["phone_search_index"]
