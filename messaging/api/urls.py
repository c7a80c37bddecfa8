from django.urls import path

from messaging.api.views import TwilioStatusCallbackView

urlpatterns = [
    path("api/messaging/twilio/status", TwilioStatusCallbackView.as_view(), name="messaging-twilio-status"),
]
