"""The fair queue (generation/queue.py): tags on jobs, a flow per workspace, the virtual clock.

Jobs already queued or running are stamped in the order they came, each workspace's tags
adding up from zero, so the order they had stays roughly the same; the flows are then
derived from them.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

TAG_SCALE = 720_720  # generation.queue.TAG_SCALE when this was written

STAMP_ACTIVE_JOBS_SQL = f"""
    WITH stamped AS (
        SELECT id,
               ROW_NUMBER() OVER (ORDER BY created_at, id) AS seq,
               SUM(num_images * {TAG_SCALE} / GREATEST(dispatch_weight, 1)) OVER (
                   PARTITION BY workspace_id ORDER BY created_at, id
               ) AS finish
        FROM generation_job
        WHERE status IN ('queued', 'running')
    )
    UPDATE generation_job AS job SET queue_seq = stamped.seq, finish_tag = stamped.finish
    FROM stamped WHERE job.id = stamped.id;
    SELECT setval('generation_job_queue_seq', GREATEST((SELECT MAX(queue_seq) FROM generation_job), 1));
    INSERT INTO generation_queueclock (id, vtime) VALUES (1, 0);
"""

BUILD_FLOWS_SQL = """
    INSERT INTO generation_queueflow
        (workspace_id, last_finish, last_seq, head_finish, head_seq, head_lane, max_in_flight,
         running)
    SELECT active.workspace_id, COALESCE(tail.finish_tag, 0), COALESCE(tail.queue_seq, 0),
           head.finish_tag, head.queue_seq, COALESCE(head.lane, ''),
           COALESCE(head.max_in_flight, 1), active.running
    FROM (
        SELECT workspace_id, COUNT(*) FILTER (WHERE status = 'running') AS running
        FROM generation_job WHERE status IN ('queued', 'running') GROUP BY workspace_id
    ) AS active
    LEFT JOIN LATERAL (
        SELECT finish_tag, queue_seq, lane, max_in_flight FROM generation_job
        WHERE workspace_id = active.workspace_id AND status = 'queued'
        ORDER BY finish_tag, queue_seq LIMIT 1
    ) AS head ON TRUE
    LEFT JOIN LATERAL (
        SELECT finish_tag, queue_seq FROM generation_job
        WHERE workspace_id = active.workspace_id AND status IN ('queued', 'running')
        ORDER BY finish_tag DESC, queue_seq DESC LIMIT 1
    ) AS tail ON TRUE
"""


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_policy_and_operator_switches'),
        ('generation', '0007_operator_switches_to_billing'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='QueueClock',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('vtime', models.BigIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name='QueueFlow',
            fields=[
                ('workspace', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='+', serialize=False, to='accounts.workspace')),
                ('last_finish', models.BigIntegerField(default=0)),
                ('last_seq', models.BigIntegerField(default=0)),
                ('head_finish', models.BigIntegerField(blank=True, null=True)),
                ('head_seq', models.BigIntegerField(blank=True, null=True)),
                ('head_lane', models.CharField(blank=True, max_length=16)),
                ('max_in_flight', models.PositiveIntegerField(default=1)),
                ('running', models.PositiveIntegerField(default=0)),
            ],
        ),
        migrations.AddField(
            model_name='job',
            name='finish_tag',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='job',
            name='queue_seq',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(condition=models.Q(('status', 'queued')), fields=['workspace', 'finish_tag', 'queue_seq'], name='job_queued_by_workspace'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(condition=models.Q(('status', 'queued')), fields=['finish_tag', 'queue_seq'], name='job_queued_in_fair_order'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(condition=models.Q(('status', 'running')), fields=['workspace'], name='job_running_by_workspace'),
        ),
        migrations.AddIndex(
            model_name='queueflow',
            index=models.Index(condition=models.Q(('head_finish__isnull', False), ('running__lt', models.F('max_in_flight'))), fields=['head_lane', 'head_finish', 'head_seq'], name='queueflow_eligible'),
        ),
        migrations.RunSQL(
            "CREATE SEQUENCE generation_job_queue_seq",
            reverse_sql="DROP SEQUENCE generation_job_queue_seq",
        ),
        migrations.RunSQL(STAMP_ACTIVE_JOBS_SQL, reverse_sql=migrations.RunSQL.noop),
        migrations.RunSQL(BUILD_FLOWS_SQL, reverse_sql=migrations.RunSQL.noop),
    ]
