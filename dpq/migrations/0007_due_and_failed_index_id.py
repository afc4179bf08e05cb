# The id added to dpq_job_due_idx and dpq_job_failed_idx: the dashboard's delayed and
# failed lists read one queue at a time in (execute_at, id) and (failed_at, id) order
# from them, instead of sorting every delayed or failed job. Same number of indexes, so an
# enqueue writes as many index entries as before.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dpq", "0006_taskresult"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="job", name="dpq_job_due_idx"),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                "queue",
                "execute_at",
                "id",
                condition=models.Q(("failed_at__isnull", True)),
                name="dpq_job_due_idx",
            ),
        ),
        migrations.RemoveIndex(model_name="job", name="dpq_job_failed_idx"),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                "queue",
                "failed_at",
                "id",
                condition=models.Q(("failed_at__isnull", False)),
                name="dpq_job_failed_idx",
            ),
        ),
    ]
