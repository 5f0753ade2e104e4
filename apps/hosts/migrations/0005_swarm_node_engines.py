# Per-node engine endpoints of Swarm nodes (shells, stats and inspect on any node)

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('hosts', '0004_swarm_tasks'),
    ]

    operations = [
        migrations.AddField(
            model_name='swarmnode',
            name='engine_endpoint',
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AddField(
            model_name='swarmnode',
            name='engine_tls_ca_cert',
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name='swarmnode',
            name='engine_tls_client_cert',
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name='swarmnode',
            name='engine_tls_client_key',
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name='swarmnode',
            name='engine_verified_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='swarmnode',
            name='engine_error',
            field=models.TextField(blank=True),
        ),
    ]
