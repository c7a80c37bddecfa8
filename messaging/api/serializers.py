from rest_framework import serializers


class TwilioStatusCallbackSerializer(serializers.Serializer):
    """The fields of Twilio's status callback this endpoint reads (Twilio sends more: To, From,
    ApiVersion, SmsSid...; they are signed too, and ignored)."""

    MessageSid = serializers.CharField(max_length=64)
    MessageStatus = serializers.CharField(max_length=32)
    ErrorCode = serializers.CharField(max_length=16, required=False, allow_blank=True)
    AccountSid = serializers.CharField(max_length=64, required=False, allow_blank=True)
