"""Mark assistant API (and Twilio's inbound WhatsApp callback): OpenAPI examples, by operationId.

core.openapi_examples attaches them; error responses not given here are rendered by the API's own error body.
Adapted from `shared/specs/mark-assistant-api.md` where it shows one, with ids in our formats; phone numbers are
fictional (555-01xx). tests/core/test_openapi_examples.py validates each against the schema.
"""

from core.openapi_examples import ByMediaType, Example, OperationExamples

# Ids in our format (`<prefix>_` + 24 base62 characters), reused so the examples tell one story.
JOHN = "pat_U3BdHjW0XcMomEjCgIcX0sVg"
JANE = "pat_ppMnd7RxD48pE7RqpiAUTsTU"
CONVERSATION = "conv_b9fHhVidEscI0c1bBCkaBZPP"
PATIENT_MESSAGE = "msg_ETmB2ofoxLsOS0KCJq4HUj7f"
ASSISTANT_REPLY = "msg_YWsRyqe4S1Q2YD6okVZjrXV3"
CLINIC_MESSAGE = "msg_gcK4N7xwoTzzUpamXvJ4E1hi"
VOICE_MESSAGE = "msg_hTVnRW1Ayfs2JRdNRaA8bfj6"
JOHN_APPOINTMENT = "apt_JJrYTYoKF4ONfVMFwysThPN9"
JANE_APPOINTMENT = "apt_k3wsFbfxGIBw6xcWT0Pk6fCc"
WEBHOOK = "wh_diLmRYdhtGBUg9xEmnLQAUxA"

EXAMPLES = {
    "messaging_twilio_inbound": OperationExamples(
        request=[
            Example(
                {
                    "MessageSid": "SM3f0e9c2b7a5d4e1f8c6b2a9d0e7f4c1b",
                    "From": "whatsapp:+14155550100",
                    "To": "whatsapp:+14155550199",
                    "Body": "Can I move my appointment to Thursday?",
                    "ProfileName": "John Doe",
                    "NumMedia": "0",
                    "AccountSid": "AC5e2b9d0c7a4f1e8b6c3d2a9f0e7b4c1d",
                },
                summary="A patient's text message",
            ),
            Example(
                {
                    "MessageSid": "MM8b1d4f7a2c5e9b0d3f6a1c4e7b2d5f8a",
                    "From": "whatsapp:+14155550100",
                    "To": "whatsapp:+14155550199",
                    "Body": "",
                    "ProfileName": "John Doe",
                    "NumMedia": "1",
                    "MediaUrl0": "https://api.twilio.com/2010-04-01/Accounts/AC5e2b9d0c7a4f1e8b6c3d2a9f0e7b4c1d/Messages/MM8b1d4f7a2c5e9b0d3f6a1c4e7b2d5f8a/Media/ME4c7a1d9e2b5f8c0a3d6e9b1f4a7c2d5e",
                    "MediaContentType0": "audio/ogg",
                    "AccountSid": "AC5e2b9d0c7a4f1e8b6c3d2a9f0e7b4c1d",
                },
                summary="A patient's voice note",
            ),
        ],
    ),
    "mark_analytics_appointments": OperationExamples(
        responses={
            200: {
                "total_appointments": 450,
                "by_status": [
                    {"count": 150, "percentage": 33.3, "status": "scheduled"},
                    {"count": 250, "percentage": 55.6, "status": "completed"},
                    {"count": 50, "percentage": 11.1, "status": "canceled"},
                ],
                "by_type": [
                    {"count": 120, "percentage": 26.7, "type": "initial_consultation"},
                    {"count": 280, "percentage": 62.2, "type": "follow_up"},
                    {"count": 50, "percentage": 11.1, "type": "emergency"},
                ],
                "by_interval": [
                    {"interval": "2023-05-01", "scheduled": 5, "rescheduled": 3, "completed": 8, "canceled": 2}
                ],
                "cancellation_reasons": [
                    {"count": 25, "percentage": 50, "reason": "Patient unavailable"},
                    {"count": 15, "percentage": 30, "reason": "Therapist unavailable"},
                    {"count": 10, "percentage": 20, "reason": "Other"},
                ],
            }
        },
    ),
    "mark_analytics_conversations": OperationExamples(
        responses={
            200: {
                "total_conversations": 1250,
                "average_length": 8.5,
                "by_interval": [
                    {"interval": "2023-05-01", "count": 42, "average_length": 7.8},
                    {"interval": "2023-05-02", "count": 38, "average_length": 9.2},
                ],
                "by_language": [
                    {"count": 850, "percentage": 68, "language": "es"},
                    {"count": 200, "percentage": 16, "language": "ca"},
                    {"count": 150, "percentage": 12, "language": "en"},
                ],
                "by_hour": [{"hour": 0, "count": 15}],
            }
        },
    ),
    "mark_analytics_patients": OperationExamples(
        responses={
            200: {
                "total_patients": 350,
                "active_patients": 280,
                "by_language": [
                    {"count": 220, "percentage": 62.9, "language": "es"},
                    {"count": 60, "percentage": 17.1, "language": "ca"},
                    {"count": 50, "percentage": 14.3, "language": "en"},
                ],
                "new_patients_by_interval": [{"interval": "2023-05-01", "count": 3}],
                "engagement": {"highly_engaged": 120, "moderately_engaged": 100, "low_engagement": 60, "inactive": 70},
            }
        },
    ),
    "mark_appointments_list": OperationExamples(
        responses={
            200: {
                "total": 75,
                "page": 1,
                "limit": 20,
                "data": [
                    {
                        "id": JOHN_APPOINTMENT,
                        "patient_id": JOHN,
                        "patient_name": "John Doe",
                        "start_time": "2023-06-15T10:00:00Z",
                        "end_time": "2023-06-15T11:00:00Z",
                        "duration": 60,
                        "type": "initial_consultation",
                        "status": "scheduled",
                        "notes": "First appointment",
                    }
                ],
            }
        },
    ),
    "mark_appointments_create": OperationExamples(
        request={
            "patient_id": JANE,
            "start_time": "2023-06-20T15:00:00Z",
            "duration": 60,
            "type": "initial_consultation",
            "notes": "New patient consultation",
            "location": "Online (Zoom)",
            "zoom_link": "https://zoom.us/j/987654321",
            "calendly_link": "https://calendly.com/event/987654321",
        },
        responses={
            201: {
                "id": JANE_APPOINTMENT,
                "patient_id": JANE,
                "patient_name": "Jane Smith",
                "start_time": "2023-06-20T15:00:00Z",
                "end_time": "2023-06-20T16:00:00Z",
                "duration": 60,
                "type": "initial_consultation",
                "status": "scheduled",
                "notes": "New patient consultation",
                "location": "Online (Zoom)",
                "zoom_link": "https://zoom.us/j/987654321",
                "calendly_link": "https://calendly.com/event/987654321",
                "reminders": [
                    {"type": "whatsapp", "time": "2023-06-19T15:00:00Z", "status": "pending"},
                    {"type": "whatsapp", "time": "2023-06-20T14:30:00Z", "status": "pending"},
                ],
            }
        },
    ),
    "mark_appointments_get": OperationExamples(
        responses={
            200: {
                "id": JOHN_APPOINTMENT,
                "patient_id": JOHN,
                "patient_name": "John Doe",
                "start_time": "2023-06-15T10:00:00Z",
                "end_time": "2023-06-15T11:00:00Z",
                "duration": 60,
                "type": "initial_consultation",
                "status": "scheduled",
                "notes": "First appointment",
                "location": "Online (Zoom)",
                "zoom_link": "https://zoom.us/j/123456789",
                "calendly_link": "https://calendly.com/event/123456789",
                "reminders": [
                    {"type": "whatsapp", "time": "2023-06-14T10:00:00Z", "status": "sent"},
                    {"type": "whatsapp", "time": "2023-06-15T09:30:00Z", "status": "pending"},
                ],
            }
        },
    ),
    "mark_appointments_update": OperationExamples(
        request={
            "start_time": "2023-06-21T16:00:00Z",
            "duration": 45,
            "status": "rescheduled",
            "notes": "Rescheduled at patient's request",
        },
        responses={
            200: {
                "id": JANE_APPOINTMENT,
                "patient_id": JANE,
                "patient_name": "Jane Smith",
                "start_time": "2023-06-21T16:00:00Z",
                "end_time": "2023-06-21T16:45:00Z",
                "duration": 45,
                "type": "initial_consultation",
                "status": "rescheduled",
                "notes": "Rescheduled at patient's request",
                "location": "Online (Zoom)",
                "zoom_link": "https://zoom.us/j/987654321",
                "calendly_link": "https://calendly.com/event/987654321",
                "reminders": [
                    {"type": "whatsapp", "time": "2023-06-20T16:00:00Z", "status": "pending"},
                    {"type": "whatsapp", "time": "2023-06-21T15:30:00Z", "status": "pending"},
                ],
            }
        },
    ),
    "mark_appointments_cancel": OperationExamples(
        request={"reason": "Patient unavailable", "notify_patient": True},
        responses={
            200: {
                "id": JANE_APPOINTMENT,
                "status": "canceled",
                "cancellation_time": "2023-06-18T09:30:00Z",
                "cancellation_reason": "Patient unavailable",
                "notification_sent": True,
            }
        },
    ),
    "mark_conversations_list": OperationExamples(
        responses={
            200: {
                "total": 250,
                "page": 1,
                "limit": 20,
                "data": [
                    {
                        "id": CONVERSATION,
                        "patient_id": JOHN,
                        "patient_name": "John Doe",
                        "start_time": "2023-05-20T14:30:00Z",
                        "end_time": "2023-05-20T14:45:00Z",
                        "language": "es",
                        "message_count": 12,
                        "summary": "Appointment scheduling and confirmation",
                    }
                ],
            }
        },
    ),
    "mark_conversations_get": OperationExamples(
        responses={
            200: {
                "id": CONVERSATION,
                "patient_id": JOHN,
                "patient_name": "John Doe",
                "start_time": "2023-05-20T14:30:00Z",
                "end_time": "2023-05-20T14:45:00Z",
                "language": "es",
                "messages": [
                    {
                        "id": PATIENT_MESSAGE,
                        "timestamp": "2023-05-20T14:30:00Z",
                        "sender": "patient",
                        "content": "Hola, quisiera programar una cita para la próxima semana",
                        "content_type": "text",
                    },
                    {
                        "id": ASSISTANT_REPLY,
                        "timestamp": "2023-05-20T14:31:00Z",
                        "sender": "assistant",
                        "content": (
                            "¡Hola! Claro, puedo ayudarte a programar una cita. ¿Qué día y hora te vendría mejor?"
                        ),
                        "content_type": "text",
                    },
                ],
                "metadata": {"intent": "appointment_scheduling", "sentiment": "positive", "escalated": False},
            }
        },
    ),
    "mark_conversations_delete": OperationExamples(
        responses={200: {"success": True, "message": "Conversation deleted successfully"}},
    ),
    "mark_conversations_export": OperationExamples(
        responses={
            200: ByMediaType(
                {
                    "application/json": {
                        "id": CONVERSATION,
                        "patient_id": JOHN,
                        "patient_name": "John Doe",
                        "start_time": "2023-05-20T14:30:00Z",
                        "end_time": "2023-05-20T14:45:00Z",
                        "language": "es",
                        "message_count": 2,
                        "summary": "Appointment scheduling and confirmation",
                        "metadata": {"intent": "appointment_scheduling"},
                        "exported_at": "2023-05-21T08:00:00Z",
                        "messages": [
                            {
                                "id": PATIENT_MESSAGE,
                                "timestamp": "2023-05-20T14:30:00Z",
                                "sender": "patient",
                                "content_type": "text",
                                "content": "Hola, quisiera programar una cita para la próxima semana",
                                "duration": None,
                            },
                            {
                                "id": ASSISTANT_REPLY,
                                "timestamp": "2023-05-20T14:31:00Z",
                                "sender": "assistant",
                                "content_type": "text",
                                "content": "¡Hola! Claro, puedo ayudarte a programar una cita.",
                                "duration": None,
                            },
                        ],
                    },
                    "text/csv": (
                        "conversation_id,patient_id,patient_name,message_id,timestamp,sender,content_type,content,"
                        "duration_seconds\r\n"
                        f"{CONVERSATION},{JOHN},John Doe,{PATIENT_MESSAGE},2023-05-20T14:30:00Z,patient,text,"
                        '"Hola, quisiera programar una cita para la próxima semana",\r\n'
                        f"{CONVERSATION},{JOHN},John Doe,{ASSISTANT_REPLY},2023-05-20T14:31:00Z,assistant,text,"
                        '"¡Hola! Claro, puedo ayudarte a programar una cita.",\r\n'
                    ),
                }
            )
        },
    ),
    "mark_messages_send": OperationExamples(
        request={
            "patient_id": JOHN,
            "content": "Hi John, your appointment is confirmed for Thursday at 10:00.",
            "content_type": "text",
        },
        responses={
            201: {
                "id": CLINIC_MESSAGE,
                "patient_id": JOHN,
                "timestamp": "2023-06-01T14:30:00Z",
                "sender": "system",
                "content": "Hi John, your appointment is confirmed for Thursday at 10:00.",
                "content_type": "text",
                "status": "queued",
                "conversation_id": CONVERSATION,
            }
        },
    ),
    "mark_messages_get": OperationExamples(
        responses={
            200: {
                "id": PATIENT_MESSAGE,
                "patient_id": JOHN,
                "timestamp": "2023-05-20T14:30:00Z",
                "sender": "patient",
                "content": "Hola, quisiera programar una cita para la próxima semana",
                "content_type": "text",
                "status": "received",
                "conversation_id": CONVERSATION,
            }
        },
    ),
    "mark_messages_send_voice": OperationExamples(
        request={
            "patient_id": JOHN,
            "audio_file": "(the audio file: OGG, MP3 or WAV)",
            "language": "en",
        },
        responses={
            201: {
                "id": VOICE_MESSAGE,
                "patient_id": JOHN,
                "timestamp": "2023-06-01T14:35:00Z",
                "sender": "system",
                "content": f"https://platform.example.com/api/v1/messages/{VOICE_MESSAGE}/audio?expires=1685630400&signature=9f2c4e7a1b",
                "content_type": "voice",
                "status": "sent",
                "conversation_id": CONVERSATION,
                "metadata": {
                    "duration": 15,
                    "format": "mp3",
                    "transcription": "Hi John, we can see you on Thursday at 10:00 instead.",
                },
            }
        },
    ),
    "mark_patients_list": OperationExamples(
        responses={
            200: {
                "total": 125,
                "page": 1,
                "limit": 20,
                "data": [
                    {
                        "id": JOHN,
                        "name": "John Doe",
                        "phone_number": "+14155550100",
                        "email": "john.doe@example.com",
                        "registration_date": "2023-01-15T10:30:00Z",
                        "last_activity": "2023-05-20T14:45:00Z",
                        "preferred_language": "es",
                        "status": "active",
                    }
                ],
            }
        },
    ),
    "mark_patients_create": OperationExamples(
        request={
            "name": "Jane Smith",
            "phone_number": "+14155550101",
            "email": "jane.smith@example.com",
            "preferred_language": "en",
            "notes": "New patient referred by Dr. Garcia",
            "metadata": {"source": "referral"},
        },
        responses={
            201: {
                "id": JANE,
                "name": "Jane Smith",
                "phone_number": "+14155550101",
                "email": "jane.smith@example.com",
                "registration_date": "2023-06-01T09:15:00Z",
                "last_activity": "2023-06-01T09:15:00Z",
                "preferred_language": "en",
                "status": "active",
                "notes": "New patient referred by Dr. Garcia",
                "metadata": {"source": "referral"},
                "whatsapp_consent": True,
                "whatsapp_opt_out_reason": "",
            }
        },
    ),
    "mark_patients_get": OperationExamples(
        responses={
            200: {
                "id": JOHN,
                "name": "John Doe",
                "phone_number": "+14155550100",
                "email": "john.doe@example.com",
                "registration_date": "2023-01-15T10:30:00Z",
                "last_activity": "2023-05-20T14:45:00Z",
                "preferred_language": "es",
                "status": "active",
                "notes": "Prefers evening appointments",
                "metadata": {"source": "website", "referral": "google"},
                "whatsapp_consent": True,
                "whatsapp_opt_out_reason": "",
            }
        },
    ),
    "mark_patients_update": OperationExamples(
        request={
            "name": "Jane Smith-Johnson",
            "phone_number": "+14155550101",
            "email": "jane.smith.johnson@example.com",
            "preferred_language": "ca",
            "notes": "Updated contact information",
            "metadata": {"source": "referral"},
            "status": "active",
        },
        responses={
            200: {
                "id": JANE,
                "name": "Jane Smith-Johnson",
                "phone_number": "+14155550101",
                "email": "jane.smith.johnson@example.com",
                "registration_date": "2023-06-01T09:15:00Z",
                "last_activity": "2023-06-01T10:30:00Z",
                "preferred_language": "ca",
                "status": "active",
                "notes": "Updated contact information",
                "metadata": {"source": "referral"},
                "whatsapp_consent": True,
                "whatsapp_opt_out_reason": "",
            }
        },
    ),
    "mark_patients_delete": OperationExamples(
        responses={200: {"success": True, "message": "Patient deleted successfully"}},
    ),
    "mark_encryption_status": OperationExamples(
        responses={
            200: {
                "enabled": True,
                "key_rotation_days": 30,
                "last_rotation": "2023-05-15T00:00:00Z",
                "next_rotation": "2023-06-14T00:00:00Z",
                "encrypted_conversations": 1250,
                "encrypted_patients": 350,
            }
        },
    ),
    "mark_system_status": OperationExamples(
        responses={
            200: {
                "status": "operational",
                "version": "1.5.2",
                "uptime": 1209600,
                "last_restart": "2023-05-15T00:00:00Z",
                "components": [
                    {"name": "api", "status": "operational"},
                    {"name": "database", "status": "operational"},
                    {"name": "whatsapp_integration", "status": "operational"},
                ],
                "metrics": {"requests_per_minute": 42, "average_response_time": 120, "error_rate": 0.2},
            }
        },
    ),
    "mark_webhooks_list": OperationExamples(
        responses={
            200: {
                "total": 12,
                "page": 1,
                "limit": 20,
                "data": [
                    {
                        "id": WEBHOOK,
                        "url": "https://clinic.example.com/webhooks/mark",
                        "events": ["conversation.created"],
                        "created_at": "2026-11-30T09:15:00Z",
                        "status": "active",
                    }
                ],
            }
        },
    ),
    "mark_webhooks_create": OperationExamples(
        request={
            "url": "https://clinic.example.com/webhooks/mark",
            "secret": "whsec_5Zq8Nw2Rt7Yp4Kx9Lm3Vb6Hc1Jd0Fg",
            "events": ["conversation.created", "conversation.updated", "appointment.created"],
        },
        responses={
            201: {
                "id": WEBHOOK,
                "url": "https://clinic.example.com/webhooks/mark",
                "events": ["conversation.created", "conversation.updated", "appointment.created"],
                "created_at": "2023-06-01T10:00:00Z",
                "status": "active",
            }
        },
    ),
    "mark_webhooks_delete": OperationExamples(
        responses={200: {"success": True, "message": "Webhook deleted successfully"}},
    ),
}
