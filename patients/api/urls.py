from django.urls import path

from patients.api import analytics, conversations, messages, system, views, webhooks
from patients.api.inbound import TwilioInboundView

urlpatterns = [
    path("api/messaging/twilio/inbound", TwilioInboundView.as_view(), name="messaging-twilio-inbound"),
    path(
        "api/v1/analytics/conversations",
        analytics.ConversationStatsView.as_view(),
        name="mark-analytics-conversations",
    ),
    path("api/v1/analytics/appointments", analytics.AppointmentStatsView.as_view(), name="mark-analytics-appointments"),
    path("api/v1/analytics/patients", analytics.PatientStatsView.as_view(), name="mark-analytics-patients"),
    path("api/v1/patients", views.PatientListView.as_view(), name="mark-patients"),
    path("api/v1/patients/<pat_id:patient_id>", views.PatientDetailView.as_view(), name="mark-patient"),
    path("api/v1/appointments", views.AppointmentListView.as_view(), name="mark-appointments"),
    path("api/v1/appointments/<apt_id:appointment_id>", views.AppointmentDetailView.as_view(), name="mark-appointment"),
    path(
        "api/v1/appointments/<apt_id:appointment_id>/cancel",
        views.AppointmentCancelView.as_view(),
        name="mark-appointment-cancel",
    ),
    path("api/v1/conversations", conversations.ConversationListView.as_view(), name="mark-conversations"),
    path(
        "api/v1/conversations/<conv_id:conversation_id>",
        conversations.ConversationDetailView.as_view(),
        name="mark-conversation",
    ),
    path(
        "api/v1/conversations/<conv_id:conversation_id>/export",
        conversations.ConversationExportView.as_view(),
        name="mark-conversation-export",
    ),
    path("api/v1/messages", messages.MessageCreateView.as_view(), name="mark-messages"),
    path("api/v1/messages/voice", messages.MessageVoiceView.as_view(), name="mark-messages-voice"),
    path("api/v1/messages/<msg_id:message_id>", messages.MessageDetailView.as_view(), name="mark-message"),
    path(
        "api/v1/messages/<msg_id:message_id>/audio", messages.MessageAudioView.as_view(), name="mark-message-audio"
    ),
    path("api/v1/system/status", system.SystemStatusView.as_view(), name="mark-system-status"),
    path("api/v1/system/encryption/status", system.EncryptionStatusView.as_view(), name="mark-encryption-status"),
    path("api/v1/webhooks", webhooks.WebhookListView.as_view(), name="mark-webhooks"),
    path("api/v1/webhooks/<wh_id:webhook_id>", webhooks.WebhookDetailView.as_view(), name="mark-webhook"),
]
