from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('dpq', '0008_queuepause'),
    ]

    operations = [
        migrations.CreateModel(
            name='ThroughputMinute',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('queue', models.CharField(max_length=100)),
                ('minute', models.DateTimeField(help_text="The minute's start.")),
                ('done', models.IntegerField(default=0, help_text='Jobs that succeeded.')),
                ('failed', models.IntegerField(default=0, help_text='Runs that failed.')),
            ],
            options={
                'verbose_name': 'throughput minute',
                'db_table': 'dpq_throughput',
                'constraints': [models.UniqueConstraint(fields=('queue', 'minute'), name='dpq_throughput_minute_uniq')],
            },
        ),
    ]
