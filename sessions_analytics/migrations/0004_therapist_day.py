"""TherapistDay: kept per-therapist UTC day totals of the sessions, backfilled from the existing sessions
(sessions_analytics.day_totals, with this migration's historical models: plain ORM, any database)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from sessions_analytics.day_totals import days_refill


def backfill(apps, schema_editor):
    days_refill(
        apps.get_model("sessions_analytics", "TrainingSession"), apps.get_model("sessions_analytics", "TherapistDay")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_user_public_id"),
        ("sessions_analytics", "0003_skill_score_therapist_start"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="TherapistDay",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("day", models.DateField()),
                ("sessions", models.PositiveIntegerField(default=0)),
                ("completed", models.PositiveIntegerField(default=0)),
                ("progress_sum", models.FloatField(default=0)),
                ("with_metrics", models.PositiveIntegerField(default=0)),
                ("response_time_sum", models.FloatField(default=0)),
                ("milestones", models.PositiveIntegerField(default=0)),
                ("latest_start", models.DateTimeField(blank=True, null=True)),
                (
                    "latest_session",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="sessions_analytics.trainingsession",
                    ),
                ),
                (
                    "organization",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="accounts.organization"
                    ),
                ),
                (
                    "therapist",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("organization", "therapist", "day"), name="uniq_therapist_day")
                ],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
