"""CareOS leads API: request and response examples for the OpenAPI document, by operationId.

core.openapi_examples attaches them (error responses not given here are rendered by the API's own error
body); tests/core/test_openapi_examples.py validates each against the schema. Adapted from `shared/specs/careos-leads-api.md` where it shows one, with ids in our formats.
"""

from core.openapi_examples import OperationExamples

EXAMPLES = {
    "careos_leads_ingest": OperationExamples(
        request={
            "source_platform": "businessos",
            "source_conversation_id": "bizos-lead-12345",
            "user_phone_hash": "+14155550123",
            "user_phone_encrypted": "+14155550123",
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
            200: {
                "success": True,
                "careos_lead_id": "lead_Ky8GPkC7c4Lyj4NYou36ZdOe",
                "careos_user_id": "user_sGBnj82K6RqmTPp6Z6PnwY3I",
                "careos_will_contact": True,
                "is_new_user": True,
            }
        },
    ),
}
