from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0004_environment_default_memory_limit_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="environment",
            name="record_shell_transcripts",
            field=models.BooleanField(
                default=False, help_text="Save the output of every shell session for audit."
            ),
        ),
    ]
