"""Twilio's message status callback: OpenAPI request examples, by operationId (the answer is a bodiless 204).

core.openapi_examples attaches them; error responses are rendered by the API's own error body. The fields are
the ones Twilio posts (form-encoded, signed with X-Twilio-Signature).
"""

from core.openapi_examples import Example, OperationExamples

EXAMPLES = {
    "messaging_twilio_status_callback": OperationExamples(
        request=[
            Example(
                {
                    "MessageSid": "SM3f0e9c2b7a5d4e1f8c6b2a9d0e7f4c1b",
                    "MessageStatus": "delivered",
                    "AccountSid": "AC5e2b9d0c7a4f1e8b6c3d2a9f0e7b4c1d",
                },
                summary="Delivered",
            ),
            Example(
                {
                    "MessageSid": "SM3f0e9c2b7a5d4e1f8c6b2a9d0e7f4c1b",
                    "MessageStatus": "undelivered",
                    "ErrorCode": "30008",
                    "AccountSid": "AC5e2b9d0c7a4f1e8b6c3d2a9f0e7b4c1d",
                },
                summary="Undelivered (Twilio error code)",
            ),
        ],
    ),
}
