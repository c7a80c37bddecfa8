"""Platform token: request and response examples for the OpenAPI document, by operationId.

core.openapi_examples attaches them (error responses not given here are rendered by the API's own error
body); tests/core/test_openapi_examples.py validates each against the schema. Adapted from `shared/specs/mark-assistant-api.md` where it shows one, with ids in our formats.
"""

from core.openapi_examples import OperationExamples

EXAMPLES = {
    "platform_auth_token": OperationExamples(
        request={"username": "your_api_username", "password": "your_api_password"},
        responses={
            200: {
                "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c3JfN0hxMkx4OVZiTjRjVDFtUjhzS2QzV3pFIn0.k3Y0x2h8Vf1sQm9pR4tZ7wL6bN5cA0dE2gH3jK8uT1o",
                "token_type": "bearer",
                "expires_in": 3600,
            }
        },
    ),
}
