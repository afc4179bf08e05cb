import django.db.models.functions.datetime
import django.utils.timezone
from django.db import migrations, models

# Every change of a pause wakes the workers: NOTIFY dpq_pause with the queue's name.
CREATE_TRIGGER = """
CREATE FUNCTION dpq_queuepause_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('dpq_pause', COALESCE(NEW.queue, OLD.queue));
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER dpq_queuepause_notify AFTER INSERT OR UPDATE OR DELETE ON dpq_queuepause
    FOR EACH ROW EXECUTE FUNCTION dpq_queuepause_notify();
"""
DROP_TRIGGER = """
DROP TRIGGER IF EXISTS dpq_queuepause_notify ON dpq_queuepause;
DROP FUNCTION IF EXISTS dpq_queuepause_notify();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("dpq", "0007_due_and_failed_index_id"),
    ]

    operations = [
        migrations.CreateModel(
            name="QueuePause",
            fields=[
                ("queue", models.CharField(max_length=100, primary_key=True, serialize=False)),
                (
                    "paused_at",
                    models.DateTimeField(
                        db_default=django.db.models.functions.datetime.Now(),
                        default=django.utils.timezone.now,
                    ),
                ),
                ("paused_by", models.CharField(blank=True, db_default="", default="", max_length=200)),
            ],
            options={"db_table": "dpq_queuepause", "verbose_name": "queue pause"},
        ),
        migrations.RunSQL(CREATE_TRIGGER, DROP_TRIGGER),
    ]
