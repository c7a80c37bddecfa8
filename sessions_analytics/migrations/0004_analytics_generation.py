"""AnalyticsGeneration: the token derived-analytics cache entries are keyed by. Every therapist who already has
sessions gets a row (a fresh token), so their derived analytics are cacheable from the start."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def one_per_therapist(apps, schema_editor):
    import secrets

    from django.utils import timezone

    sessions = apps.get_model("sessions_analytics", "TrainingSession")
    generations = apps.get_model("sessions_analytics", "AnalyticsGeneration")
    now = timezone.now()
    pairs = sessions.objects.values_list("organization_id", "therapist_id").distinct().order_by()
    generations.objects.bulk_create(
        (
            generations(organization_id=org, therapist_id=user, token=secrets.token_hex(16), changed_at=now)
            for org, user in pairs.iterator()
        ),
        batch_size=1000,
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_external_identity_plural'),
        ('sessions_analytics', '0003_skill_score_therapist_start'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='AnalyticsGeneration',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('token', models.CharField(max_length=32)),
                ('changed_at', models.DateTimeField()),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.organization')),
                ('therapist', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('organization', 'therapist'), name='analytics_generation_unique')],
            },
        ),
        migrations.RunPython(one_per_therapist, migrations.RunPython.noop),
    ]
