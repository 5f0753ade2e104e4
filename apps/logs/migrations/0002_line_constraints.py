# The line's tenant and environment lose their foreign key constraints on PostgreSQL
# (each cost a query per inserted row; see LogLine). Django's own delete cascade stays.
#
# On SQLite the database keeps them: changing a column there rebuilds the table, which
# would drop the FTS5 triggers of 0001, and SQLite checks a constraint cheaply.

import django.db.models.deletion
from django.db import migrations, models

COLUMNS = {
    "tenant_id": ("tenants_tenant", "logs_logline_tenant_id_a07e8a18_fk_tenants_tenant_id"),
    "environment_id": (
        "tenants_environment",
        "logs_logline_environment_id_5a5034d6_fk_tenants_environment_id",
    ),
}


def drop_constraints(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, "logs_logline")
    for name, info in found.items():
        if info["foreign_key"] and info["columns"][0] in COLUMNS:
            schema_editor.execute(f'ALTER TABLE logs_logline DROP CONSTRAINT "{name}"')


def add_constraints(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column, (table, name) in COLUMNS.items():
        schema_editor.execute(
            f'ALTER TABLE logs_logline ADD CONSTRAINT "{name}" FOREIGN KEY ({column}) '
            f"REFERENCES {table} (id) DEFERRABLE INITIALLY DEFERRED"
        )


class Migration(migrations.Migration):

    dependencies = [
        ('logs', '0001_initial'),
        ('tenants', '0007_retiredtenant'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_constraints, add_constraints)],
            state_operations=[
                migrations.AlterField(
                    model_name='logline',
                    name='environment',
                    field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.environment'),
                ),
                migrations.AlterField(
                    model_name='logline',
                    name='tenant',
                    field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant'),
                ),
            ],
        ),
    ]
