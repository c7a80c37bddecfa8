from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookattempt",
            name="state",
            field=models.CharField(
                choices=[
                    ("sending", "Sending (in flight)"),
                    ("completed", "Completed"),
                    ("worker_lost", "Worker lost (outcome unknown)"),
                ],
                default="completed",
                max_length=20,
            ),
        ),
        migrations.AddIndex(
            model_name="webhookattempt",
            index=models.Index(
                condition=models.Q(("state", "sending")), fields=["delivery"], name="webhooks_attempt_in_flight"
            ),
        ),
    ]
