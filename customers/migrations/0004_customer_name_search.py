from django.db import migrations

# The search box finds customers by the beginnings of words of their name
# (cases.fulltext.prefix_query): a GIN index over exactly what cases.fulltext.vector("name")
# renders. PostgreSQL only (the SQLite default uses LIKE); built CONCURRENTLY.
CREATE = (
    'CREATE INDEX CONCURRENTLY IF NOT EXISTS "customer_name_search_idx" ON "customers_customer" '
    "USING gin (to_tsvector('simple'::regconfig, COALESCE(\"name\", '')))"
)


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute('DROP INDEX CONCURRENTLY IF EXISTS "customer_name_search_idx"')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("customers", "0003_privacy_erasure"),
    ]

    operations = [
        migrations.RunPython(create, drop, elidable=False),
    ]
