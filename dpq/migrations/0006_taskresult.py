from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('dpq', '0005_schedulestate'),
    ]

    operations = [
        migrations.CreateModel(
            name='TaskResult',
            fields=[
                ('job_id', models.BigIntegerField(primary_key=True, serialize=False)),
                ('backend', models.CharField(help_text='The TASKS alias.', max_length=100)),
                ('queue_name', models.CharField(max_length=100)),
                ('task_path', models.CharField(max_length=255)),
                ('priority', models.IntegerField(default=0)),
                ('args', models.JSONField(default=list)),
                ('kwargs', models.JSONField(default=dict)),
                ('status', models.CharField(help_text='SUCCESSFUL, FAILED, or READY between attempts.', max_length=10)),
                ('return_value', models.JSONField(blank=True, null=True)),
                ('errors', models.JSONField(default=list, help_text='One {exception_class_path, traceback} per failure.')),
                ('worker_ids', models.JSONField(default=list, help_text='One per attempt.')),
                ('enqueued_at', models.DateTimeField(blank=True, null=True)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('last_attempted_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'verbose_name': 'task result',
                'db_table': 'dpq_taskresult',
                'indexes': [models.Index(fields=['finished_at'], name='dpq_taskresult_finished_idx')],
            },
        ),
    ]
