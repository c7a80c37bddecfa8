"""SessionSkillScore.therapist and .session_start: copies of the session's therapist and start time, so the
skill reads range-scan (therapist, skill, session_start, recorded_at, id) instead of joining and sorting every
score.

Added nullable, filled from the sessions in one UPDATE, then made NOT NULL and indexed."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def copy_from_sessions(apps, schema_editor):
    scores = apps.get_model("sessions_analytics", "SessionSkillScore")._meta.db_table
    sessions = apps.get_model("sessions_analytics", "TrainingSession")._meta.db_table
    quote = schema_editor.quote_name  # the names below are the models' table names, never input
    with schema_editor.connection.cursor() as cursor:
        if schema_editor.connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {quote(scores)} AS score "  # noqa: S608
                "SET therapist_id = ses.therapist_id, session_start = ses.start_time "
                f"FROM {quote(sessions)} AS ses WHERE ses.id = score.session_id"
            )
            # The new foreign key's checks are deferred to commit: run them now, or PostgreSQL refuses the
            # ALTER TABLE ... SET NOT NULL below ("pending trigger events").
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        else:  # SQLite (and any other database): correlated subqueries, plain SQL everywhere
            cursor.execute(
                f"UPDATE {quote(scores)} SET "  # noqa: S608
                f"therapist_id = (SELECT ses.therapist_id FROM {quote(sessions)} ses WHERE ses.id = session_id), "
                f"session_start = (SELECT ses.start_time FROM {quote(sessions)} ses WHERE ses.id = session_id)"
            )


class Migration(migrations.Migration):
    dependencies = [
        ("sessions_analytics", "0002_analytics_skill_category"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="sessionskillscore",
            name="therapist",
            field=models.ForeignKey(
                null=True,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="sessionskillscore",
            name="session_start",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(copy_from_sessions, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name="sessionskillscore",
            name="therapist",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="sessionskillscore",
            name="session_start",
            field=models.DateTimeField(),
        ),
        migrations.AddIndex(
            model_name="sessionskillscore",
            index=models.Index(
                fields=["therapist", "skill", "session_start", "recorded_at", "id"], name="sss_therapist_skill_start"
            ),
        ),
    ]
