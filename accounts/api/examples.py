"""Platform token (`POST /api/v1/auth/token`): OpenAPI request and response examples, by operationId.

core.openapi_examples attaches them; other error responses are rendered by the API's own error body. As
`shared/specs/mark-assistant-api.md` shows the exchange, with a signed-in user's real-looking values.
"""

from core.openapi_examples import Example, OperationExamples

ACCESS_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwiZXhwIjoxNzk2MDMzNzAwLCJzdWIiOiJ1c3Jf"
    "QUQ4SWRVdzhhVWhIaDJRamdOdlI2NE9jIn0.Xw2qJ8mN4vL1tR7kP9zC3bH6yF0dS5aG8eT2uW4iQ1o"
)

EXAMPLES = {
    "platform_auth_token": OperationExamples(
        request={"username": "clinic-integration", "password": "correct-horse-battery-staple"},
        responses={
            200: {"access_token": ACCESS_TOKEN, "token_type": "bearer", "expires_in": 3600},
            401: Example(
                {
                    "error": {
                        "code": "invalid_credentials",
                        "message": "Invalid username or password",
                        "details": None,
                    }
                },
                summary="Wrong username or password",
            ),
        },
    ),
}
