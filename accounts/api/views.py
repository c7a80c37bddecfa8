from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework_simplejwt.tokens import AccessToken

from accounts.api.serializers import TokenRequestSerializer, TokenResponseSerializer
from core.api import ApiView, public
from core.apis import MARK
from core.errors import ApiError
from core.ratelimit import claim_account, failure_guard
from core.schema import error_responses
from core.validation import validated


@public
class TokenView(ApiView):
    """Exchange a platform username and password for a 1-hour bearer token."""

    api_family = MARK
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["Platform"],
        operation_id="platform_auth_token",
        request=TokenRequestSerializer,
        responses={200: TokenResponseSerializer, **error_responses(MARK, 400, 401, 429)},
        description="Platform token (Mark spec: `POST /auth/token`). Also used by Routiq, the therapist "
        "dashboard and the LoveRescue app as their bearer token.",
    )
    def post(self, request):
        credentials = validated(TokenRequestSerializer, request.data, field_details=True)
        # Failed passwords count per client address and per username (casefolded: one budget however the
        # name is spelled); a username that failed too often is refused only from addresses it never used.
        with failure_guard(request, MARK.auth_failures):
            claim_account(request, f"user:{credentials['username'].casefold()}")
            user = authenticate(request._request, username=credentials["username"], password=credentials["password"])
            if user is None or not user.is_active:
                raise ApiError(401, "Invalid username or password", code="invalid_credentials")
        request._request.user = user  # the access log records who obtained the token
        token = AccessToken.for_user(user)
        return Response(
            TokenResponseSerializer(
                {
                    "access_token": str(token),
                    "token_type": "bearer",
                    "expires_in": settings.ACCESS_TOKEN_LIFETIME_SECONDS,
                }
            ).data
        )
