"""CareOS leads API: OpenAPI request and response examples, by operationId.

core.openapi_examples attaches them; error responses not given here are rendered by the API's own error body.
Adapted from `shared/specs/careos-leads-api.md` (its example request, success response and error bodies); the
phone hash and ciphertext placeholders are real-looking values here (a hex SHA-256 and a base64 RSA-OAEP block of
a 2048-bit key) and the ids are ours (`lead_`, `user_`). tests/core/test_openapi_examples.py validates each.
"""

from core.openapi_examples import Example, OperationExamples

# Illustrative only: a block of the right length and alphabet, not an encryption of a real number.
PHONE_CIPHERTEXT = (
    "JJM+iK2KFS+f37JO12clSIwOrzAa9jJzlqoYaIlh1AJ3HTxU1x9ojwTXQCAzycPsrWbRKwSKT7KsUwhd7x4eqUP8Fo7fYeUeEC7EfI0Berz"
    "iDPfZWbly1CkaZL7fGbAnzgkl1KW5H+N5rgT6Mv5cqF3LDTXe2lNBlcHarbtMPxnag9o6Gm65DHRHT/jTtVqsn2cCjoHohM4pfHkmEhI+3E"
    "3ThW0ml4IbtplaJbpS4SPg7itrd9Q3EXQ8O5sNp1R+U2yp2IT2KT6G+7kJ7ULqeWBH2Neryj1ArnBpZg9XRe7qRpSaPrqHyiSJXPcJIyLjJiP"
    "mq9gKDImI2flBi8I5rg=="
)

EXAMPLES = {
    "careos_leads_ingest": OperationExamples(
        request={
            "source_platform": "businessos",
            "source_conversation_id": "bizos-lead-12345",
            "user_phone_hash": "be11d1b7a60f73f50927f7ae221298206a0489f711e79ade170bdb5d38eeeadd",
            "user_phone_encrypted": PHONE_CIPHERTEXT,
            "user_name": "John Doe",
            "user_language": "en",
            "user_location_state": "CA",
            "user_location_country": "US",
            "user_location_city": "San Francisco",
            "category": "healthcare",
            "subcategory": "caregiver_hiring",
            "original_message": "I need help finding a caregiver for my mom who has mobility issues",
            "ai_extracted_details": {
                "urgency": "medium",
                "person_mentioned": "mom",
                "service_type": "caregiver",
                "condition_mentioned": "mobility issues",
            },
            "user_consent": True,
            "consent_timestamp": "2025-01-08T12:00:00Z",
            "lead_value_agreed": 15.0,
        },
        responses={
            200: [
                Example(
                    {
                        "success": True,
                        "careos_lead_id": "lead_Ky8GPkC7c4Lyj4NYou36ZdOe",
                        "careos_user_id": "user_sGBnj82K6RqmTPp6Z6PnwY3I",
                        "careos_will_contact": True,
                        "is_new_user": True,
                    },
                    summary="A new person",
                ),
                Example(
                    {
                        "success": True,
                        "careos_lead_id": "lead_R3vX8mQ1Tz6Wk9Nc2Hp5Lb7Y",
                        "careos_user_id": "user_sGBnj82K6RqmTPp6Z6PnwY3I",
                        "careos_will_contact": True,
                        "is_new_user": False,
                    },
                    summary="A person this platform referred before",
                    description="A retry with the same source_conversation_id gets the first answer again.",
                ),
            ],
            400: [
                Example(
                    {"error": "Missing required fields: user_phone_encrypted, original_message"},
                    summary="Missing required fields",
                ),
                Example({"error": "User consent required"}, summary="Missing consent"),
                Example({"error": "Failed to decrypt user data"}, summary="Decryption failure"),
            ],
            401: Example({"error": "Invalid API key"}, summary="Invalid API key"),
        },
    ),
}
