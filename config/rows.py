"""Row writes for the inbox's hot path, without the ORM's per-call SQL compiler.

``Model.save`` compiles its INSERT or UPDATE again on every call: for a model of thirty
columns that is most of the Python time of writing one row. The inbox writes a customer,
an identity, a case, a message and its case events for every new conversation, so
``insert_row``, ``insert_rows`` (many rows of one model in one statement) and ``update_row``
build each statement once per model (and number of rows, or set of columns) and only
prepare the values per call, through the same field methods ``save`` uses (``pre_save`` for
the ``auto_now`` stamps, ``get_db_prep_save`` for the database's form), and bind them
client-side themselves (``_execute``: psycopg would parse these long statements again on
every call). ``insert_linked`` writes new rows that refer to each other (customer,
identity, case, message) in one statement, its data-modifying ``WITH`` parts passing each
new key on to the next: one round trip instead of four. ``reserve_keys`` draws primary
keys ahead, for rows written later, many to a statement (``insert_rows(...,
with_keys=True)``).

What they leave out of ``save``: signals (no ``pre_save``/``post_save`` receiver listens
to the models written this way; the configuration models the audit trail follows are
never written through here), parent models (multi-table inheritance) and ``Model.save``
overrides, so a caller keeps whatever a model's ``save`` ensures itself. Off PostgreSQL
(the embedded SQLite default) they fall back to ``save`` and ``bulk_create``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.models import Model
from psycopg.adapt import Transformer

# Rows per INSERT of ``insert_rows`` (and so at most this many cached statements per model).
MAX_ROWS = 100
_inserts: dict[tuple[type[Model], int, str, bool], tuple[bytes, list]] = {}
_updates: dict[tuple[type[Model], tuple[str, ...]], tuple[bytes, list]] = {}


_transformers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _execute(cursor, template: bytes, params: list) -> None:
    """Execute ``template`` (SQL built here, ``%s`` for each value) with ``params`` bound
    client-side, as psycopg binds them for Django: each value as a literal from the
    connection's own adapters, NULL for None.

    psycopg parses a query for its placeholders on every call when it is longer than 4 kB or
    has more than 50 values (it caches only smaller ones), and the statements here are all
    that: a message alone has 27 columns. They never change, so their template is made once
    (``_template``) and only the values are turned into literals per call.
    """
    raw = cursor.cursor.connection
    transformer = _transformers.get(raw)
    if transformer is None:
        # One per connection, as a cursor keeps one: it remembers the adapter of each type.
        transformer = _transformers[raw] = Transformer.from_context(raw)
    literal = transformer.as_literal
    query = template % tuple(b"NULL" if value is None else literal(value) for value in params)
    cursor.execute(query.decode(raw.info.encoding))


def _template(sql: str) -> bytes:
    """``sql`` (ASCII: quoted model names and ``%s`` placeholders) as ``_execute`` takes it."""
    if "%" in sql.replace("%s", ""):
        raise ValueError("A statement for _execute has a per cent sign other than its placeholders.")
    return sql.encode("ascii")


def insert_row(obj: Model, *, on_conflict: str = "") -> bool:
    """INSERT ``obj``, set its primary key and mark it saved; False when ``on_conflict``
    (SQL after ``ON CONFLICT``, say ``(channel_id, delivery_id) DO NOTHING``) kept the
    row out, True otherwise. An integrity error is raised as Django's ``IntegrityError``."""
    if connection.vendor != "postgresql":
        if on_conflict:
            raise NotImplementedError("ON CONFLICT inserts are written for PostgreSQL only.")
        obj.save(force_insert=True)
        return True
    return bool(_insert([obj], on_conflict))


def insert_rows(objs: list[Model], *, with_keys: bool = False) -> None:
    """INSERT ``objs`` (of one model) in one statement, like ``bulk_create`` on PostgreSQL:
    primary keys set, objects marked saved. ``with_keys``: the objects carry their primary
    keys already (drawn with ``reserve_keys``), and those are written."""
    if not objs:
        return
    if connection.vendor != "postgresql":
        type(objs[0]).objects.bulk_create(objs)
        return
    for start in range(0, len(objs), MAX_ROWS):
        _insert(objs[start : start + MAX_ROWS], "", with_keys)


def reserve_keys(counts: dict[type[Model], int]) -> dict[type[Model], list[int]]:
    """``counts[model]`` new primary keys of each model, drawn from its sequence in one
    statement: for rows whose keys are wanted before they are written (``insert_rows(...,
    with_keys=True)``). A key drawn and never used is a gap in the sequence, as after a
    rollback. PostgreSQL only."""
    db = connections[DEFAULT_DB_ALIAS]
    models = [model for model, count in counts.items() if count > 0]
    if not models:
        return {}
    parts, params = [], []
    for model in models:
        meta = model._meta
        parts.append(
            "(SELECT array_agg(nextval(pg_get_serial_sequence(%s, %s))) FROM generate_series(1, %s))"
        )
        params += [db.ops.quote_name(meta.db_table), meta.pk.column, counts[model]]
    with db.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        row = cursor.fetchone()
    return {model: sorted(keys) for model, keys in zip(models, row, strict=True)}


def _insert(objs: list[Model], on_conflict: str, with_keys: bool = False) -> int:
    """Insert ``objs``; how many rows went in (their objects, in order, get their keys)."""
    db = connections[DEFAULT_DB_ALIAS]
    model = type(objs[0])
    key = (model, len(objs), on_conflict, with_keys)
    statement = _inserts.get(key)
    if statement is None:
        statement = _inserts[key] = _insert_statement(model, len(objs), on_conflict, db, with_keys)
    sql, fields = statement
    params = []
    for obj in objs:
        # Foreign keys to objects saved after they were assigned: take their ids now, as save does.
        obj._prepare_related_fields_for_save(operation_name="insert")
        params += [f.get_db_prep_save(f.pre_save(obj, True), db) for f in fields]
    with db.cursor() as cursor:
        _execute(cursor, sql, params)
        rows = cursor.fetchall()
    if on_conflict and not rows:
        return 0
    for obj, (pk,) in zip(objs, rows, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = db.alias
    return len(rows)


def update_row(obj: Model, fields: Iterable[str]) -> None:
    """UPDATE the columns of ``fields`` (field names) of the stored ``obj``, like
    ``obj.save(update_fields=fields)``; ``DatabaseError`` when no row has its key."""
    names = tuple(sorted(set(fields)))
    if not names:
        return
    if connection.vendor != "postgresql":
        obj.save(update_fields=names)
        return
    db = connections[DEFAULT_DB_ALIAS]
    model = type(obj)
    statement = _updates.get((model, names))
    if statement is None:
        statement = _updates[(model, names)] = _update_statement(model, names, db)
    sql, model_fields = statement
    obj._prepare_related_fields_for_save(operation_name="update")
    params = [f.get_db_prep_save(f.pre_save(obj, False), db) for f in model_fields]
    params.append(model._meta.pk.get_db_prep_value(obj.pk, db))
    with db.cursor() as cursor:
        _execute(cursor, sql, params)
        if cursor.rowcount == 0:
            raise DatabaseError(f"{model.__name__} {obj.pk} is not stored: no row was updated.")


def _insert_statement(
    model: type[Model], rows: int, on_conflict: str, db, with_keys: bool = False
) -> tuple[bytes, list]:
    meta = model._meta
    if meta.parents:
        raise TypeError(f"{model.__name__} inherits a stored model; save it with save().")
    fields = [f for f in meta.concrete_fields if (with_keys or not f.primary_key) and not f.generated]
    quote = db.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    conflict = f" ON CONFLICT {on_conflict}" if on_conflict else ""
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {', '.join([row] * rows)}{conflict} "  # noqa: S608 - names from the model
        f"RETURNING {quote(meta.pk.column)}"
    )
    return _template(sql), fields


def _update_statement(model: type[Model], names: tuple[str, ...], db) -> tuple[bytes, list]:
    meta = model._meta
    fields = [meta.get_field(name) for name in names]
    for field in fields:
        if not field.concrete or field.primary_key or field.generated:
            raise ValueError(f"{model.__name__}.{field.name} is not a column update_row can write.")
    quote = db.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608
    return _template(sql), fields


_linked: dict[tuple, tuple[bytes, list]] = {}


def insert_linked(objs: list[Model]) -> None:
    """INSERT new ``objs`` in one statement, each referring to earlier ones of the list through
    its foreign keys (a customer, its identity, its case, the case's first message), like
    saving them in order: every object gets its primary key and its foreign keys' ids.
    Objects that already have a primary key are taken as stored and left out (a chain whose
    head may exist: an identity on a customer already stored)."""
    objs = [obj for obj in objs if obj.pk is None]
    if not objs:
        return
    if connection.vendor != "postgresql":
        for obj in objs:
            obj.save(force_insert=True)
        return
    if len(objs) == 1:
        insert_row(objs[0])
        return
    db = connections[DEFAULT_DB_ALIAS]
    position = {id(obj): i for i, obj in enumerate(objs)}
    shape, links = [], []
    for i, obj in enumerate(objs):
        linked = {}
        for field in obj._meta.concrete_fields:
            if field.is_relation and field.is_cached(obj):
                target = position.get(id(field.get_cached_value(obj)), i)
                if target < i:
                    linked[field.name] = target
        shape.append((type(obj), tuple(sorted(linked.items()))))
        links.append(linked)
    key = tuple(shape)
    statement = _linked.get(key)
    if statement is None:
        statement = _linked[key] = _linked_statement(key, db)
    sql, fields_of = statement
    params = []
    for obj, linked, fields in zip(objs, links, fields_of, strict=True):
        for field in fields:
            if field.name not in linked:
                if field.is_relation:
                    related = field.get_cached_value(obj, default=None) if field.is_cached(obj) else None
                    if related is not None and getattr(obj, field.attname) is None:
                        # Saved after it was assigned: assigning it again takes its id (as save does).
                        setattr(obj, field.name, related)
                params.append(field.get_db_prep_save(field.pre_save(obj, True), db))
    with db.cursor() as cursor:
        _execute(cursor, sql, params)
        keys = cursor.fetchone()
    for obj, pk in zip(objs, keys, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = db.alias
    for obj, linked in zip(objs, links, strict=True):
        for name, target in linked.items():
            # The object again, not its id: setting the id alone would drop the cached object.
            setattr(obj, name, objs[target])


def _linked_statement(shape: tuple, db) -> tuple[bytes, list]:
    quote = db.ops.quote_name
    parts, fields_of = [], []
    for i, (model, linked) in enumerate(shape):
        meta = model._meta
        links = dict(linked)
        fields = [f for f in meta.concrete_fields if not f.primary_key and not f.generated]
        values = ", ".join(
            f"(SELECT {quote(shape[links[f.name]][0]._meta.pk.column)} FROM r{links[f.name]})"
            if f.name in links
            else "%s"
            for f in fields
        )
        columns = ", ".join(quote(f.column) for f in fields)
        parts.append(
            f"r{i} AS (INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({values}) "  # noqa: S608
            f"RETURNING {quote(meta.pk.column)})"
        )
        fields_of.append(fields)
    keys = ", ".join(
        f"(SELECT {quote(model._meta.pk.column)} FROM r{i})" for i, (model, _) in enumerate(shape)
    )
    return _template(f"WITH {', '.join(parts)} SELECT {keys}"), fields_of
