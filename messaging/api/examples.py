"""Twilio's message status callback: request and response examples for the OpenAPI document, by operationId.

core.openapi_examples attaches them (error responses not given here are rendered by the API's own error
body); tests/core/test_openapi_examples.py validates each against the schema.
"""

from core.openapi_examples import OperationExamples

EXAMPLES = {
    "messaging_twilio_status_callback": OperationExamples(
        request={
            "MessageSid": "SM3f0e9c2b7a5d4e1f8c6b2a9d0e7f4c1b",
            "MessageStatus": "delivered",
            "ErrorCode": "30008",
            "AccountSid": "AC3f0e9c2b7a5d4e1f8c6b2a9d0e7f4c1b",
        },
    ),
}
