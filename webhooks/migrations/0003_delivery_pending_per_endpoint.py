from django.db import migrations, models


class Migration(migrations.Migration):
    """A batch's claim reads one endpoint's pending deliveries, oldest due first: a partial index, so
    neither the claim nor the no-op check of a message scans the endpoint's delivered history."""

    dependencies = [
        ("webhooks", "0002_attempt_state"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(
                condition=models.Q(("status", "pending")),
                fields=["endpoint", "next_attempt_at"],
                name="webhooks_delivery_endpoint_due",
            ),
        ),
    ]
