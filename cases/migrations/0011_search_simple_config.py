from django.db import migrations, models

# The desk's full-text indexes move from English stemming to the 'simple' configuration
# (cases.fulltext says why), and the search box's message results get an index in their
# order (newest first). The expressions must be exactly what cases.fulltext.vector renders,
# or the planner cannot use the index. PostgreSQL only: the SQLite default searches with
# LIKE and has no GIN indexes. Built CONCURRENTLY so a live messages table is not locked:
# the new index is built under a temporary name, the old one dropped, the new one renamed.
FULLTEXT = {
    "message_text_search_idx": ("cases_message", "text"),
    "case_subject_search_idx": ("cases_case", "subject"),
}
RECENT = (
    'CREATE INDEX {how} IF NOT EXISTS "message_recent_idx" ON "cases_message" ("sent_at" DESC, "id" DESC)'
)


def _swap(schema_editor, config):
    for name, (table, column) in FULLTEXT.items():
        building = f"{name[:-4]}_new_idx"
        schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{building}"')
        schema_editor.execute(
            f'CREATE INDEX CONCURRENTLY "{building}" ON "{table}" '
            f"USING gin (to_tsvector('{config}'::regconfig, COALESCE(\"{column}\", '')))"
        )
        schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
        schema_editor.execute(f'ALTER INDEX "{building}" RENAME TO "{name}"')


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute(RECENT.format(how=""))
        return
    _swap(schema_editor, "simple")
    schema_editor.execute(RECENT.format(how="CONCURRENTLY"))


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute('DROP INDEX IF EXISTS "message_recent_idx"')
        return
    schema_editor.execute('DROP INDEX CONCURRENTLY IF EXISTS "message_recent_idx"')
    _swap(schema_editor, "english")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("cases", "0010_caseevent_split"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forwards, backwards, elidable=False)],
            state_operations=[
                migrations.AddIndex(
                    model_name="message",
                    index=models.Index(fields=["-sent_at", "-id"], name="message_recent_idx"),
                ),
            ],
        ),
    ]
