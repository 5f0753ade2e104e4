# The line's source loses its foreign key constraint on PostgreSQL, which checked it
# with a query per inserted row (see LogLine.source). Its two guarantees stay:
# - a line is inserted only with its source: the collector inserts a batch in the
#   transaction that holds the source row locked (collector.commit);
# - a source is not deleted while lines still name it: the trigger below refuses it,
#   as the constraint did. It runs once the delete holds the rows' locks, and its query
#   takes a fresh snapshot (a VOLATILE function under READ COMMITTED), so it also sees
#   lines a collector committed while the delete waited for that lock. Django deletes a
#   source's lines before the source (on_delete), so its deletes pass.
#
# On SQLite the database keeps the constraint (see 0002).

import django.db.models.deletion
from django.db import migrations, models

CONSTRAINT = "logs_logline_source_id_4bcef37b_fk_logs_logsource_id"

FORWARD = [
    """
    CREATE FUNCTION logs_source_delete_check() RETURNS trigger LANGUAGE plpgsql VOLATILE AS $$
    DECLARE
        named bigint;
    BEGIN
        SELECT line.source_id INTO named
        FROM logs_logline AS line JOIN gone ON gone.id = line.source_id LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'log source % still has lines', named
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN NULL;
    END
    $$
    """,
    # Once per statement, over the deleted rows together (a transition table): the
    # table has no index on source_id (every index costs every collected line), so a
    # check per row would read the table once per deleted source.
    "CREATE TRIGGER logs_source_delete_check AFTER DELETE ON logs_logsource "
    "REFERENCING OLD TABLE AS gone "
    "FOR EACH STATEMENT EXECUTE FUNCTION logs_source_delete_check()",
]
BACKWARD = [
    "DROP TRIGGER IF EXISTS logs_source_delete_check ON logs_logsource",
    "DROP FUNCTION IF EXISTS logs_source_delete_check()",
    f'ALTER TABLE logs_logline ADD CONSTRAINT "{CONSTRAINT}" FOREIGN KEY (source_id) '
    "REFERENCES logs_logsource (id) DEFERRABLE INITIALLY DEFERRED",
]


def forward(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, "logs_logline")
    for name, info in found.items():
        if info["foreign_key"] and info["columns"] == ["source_id"]:
            schema_editor.execute(f'ALTER TABLE logs_logline DROP CONSTRAINT "{name}"')
    for sql in FORWARD:
        schema_editor.execute(sql, None)  # no parameters: the "%" is PL/pgSQL's


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in BACKWARD:
            schema_editor.execute(sql)


class Migration(migrations.Migration):

    dependencies = [
        ('logs', '0002_line_constraints'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forward, backward)],
            state_operations=[
                migrations.AlterField(
                    model_name='logline',
                    name='source',
                    field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='lines', to='logs.logsource'),
                ),
            ],
        ),
    ]
