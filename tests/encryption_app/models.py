from django.db import models

from core.encryption import BlindIndexField, EncryptedJSONField, EncryptedTextField


class SecretNote(models.Model):
    body = EncryptedTextField(blank=True, default="")
    phone = EncryptedTextField(null=True, blank=True)
    phone_index = BlindIndexField(null=True, blank=True)
    extra = EncryptedJSONField(null=True, blank=True)

    def __str__(self) -> str:
        return f"SecretNote {self.pk}"
