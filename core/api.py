"""Base classes for API views: each view declares the API it belongs to and gets its envelope,
rate policy and OpenAPI tag from that one declaration."""

from __future__ import annotations

from rest_framework.views import APIView

from core import ratelimit
from core.apis import ApiFamily
from core.ratelimit import RatePolicy


class ApiViewMixin:
    api_family: ApiFamily | None = None
    # Defaults to the family's policy; a view overrides it for another tier (e.g. Routiq sync).
    rate_policy: RatePolicy | None = None
    # Routes that anonymous callers may use on purpose (token exchange, health). The URL walk test
    # fails for any other route that does not refuse an anonymous request.
    public = False

    def get_rate_policy(self) -> RatePolicy | None:
        if self.rate_policy is not None:
            return self.rate_policy
        return self.api_family.rate_policy if self.api_family else None

    def perform_authentication(self, request):
        # Per-IP limits count before credentials are checked, so bad credentials are throttled too.
        ratelimit.enforce(request._request, self.get_rate_policy(), ratelimit.Stage.BEFORE_AUTH)
        # Failed credentials are counted per address and claimed account (a view without authenticators
        # checks none here; token exchanges guard their own check).
        limits = self.api_family.auth_failures if self.api_family and request.authenticators else None
        # Authenticators that claim their account before checking anything (`claims_account_first`) let the
        # guard read the address's failures with the account's, in one round trip.
        claims_first = all(getattr(each, "claims_account_first", False) for each in request.authenticators)
        with ratelimit.failure_guard(request._request, limits, claims_first=claims_first):
            super().perform_authentication(request)

    def check_throttles(self, request):
        ratelimit.enforce(request._request, self.get_rate_policy(), ratelimit.Stage.AFTER_AUTH)


class ApiView(ApiViewMixin, APIView):
    pass


def public(view_class):
    """Mark a view class as deliberately open to anonymous callers."""
    view_class.public = True
    return view_class
