from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("generation", "0012_job_request_id")]

    operations = [
        migrations.AddIndex(
            model_name="job", index=models.Index(fields=["created_at"], name="job_created_at")
        ),
        migrations.AddIndex(
            model_name="job", index=models.Index(fields=["finished_at"], name="job_finished_at")
        ),
        migrations.AddIndex(
            model_name="image",
            index=models.Index(fields=["created_at"], name="image_created_at"),
        ),
    ]
