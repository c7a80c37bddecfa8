from django.db import migrations, models


class Migration(migrations.Migration):
    """One wake-up message per endpoint instead of one broker message per delivery (issue 15): the flag
    that says a message for the endpoint is on its way or a run is draining it. A nullable column without a
    default: no table rewrite, existing rows are free (NULL)."""

    dependencies = [
        ("webhooks", "0003_delivery_pending_per_endpoint"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookendpoint",
            name="wake_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
