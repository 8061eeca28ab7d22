"""Look-ups compiled once and run again with other values.

Django compiles a queryset to SQL on every evaluation. For the inbox's look-ups (a message
with its case and customer, locked; a customer's latest case) compiling costs more Python
time than PostgreSQL spends answering, and the inbox runs them for nearly every message.

``Prepared(build)`` takes a function that builds the queryset from its values. The first
call of each shape (the keyword options, the values' types) builds it with stand-in values,
compiles it with Django's own compiler, and remembers the SQL and where each value goes in
its parameters; later calls only execute that SQL with their values and turn the rows into
model instances the way ``QuerySet`` does (the same converters, ``select_related``
populators and ``from_db``).

The contract for ``build``: its positional values only ever reach plain comparisons
(``field=value``, ``field__gte=value``), never ``None`` and never a list, so the SQL does
not depend on them; anything that changes the SQL (``nowait``, a flag) is a keyword option,
part of the shape. Values are ``int``, ``str`` or aware ``datetime``. Off PostgreSQL the
queryset is built and evaluated each time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators
from django.db.transaction import TransactionManagementError

_STAND_INS = {
    # Within a 32-bit integer column's range: Django turns a comparison past it into "no rows".
    int: lambda i: -1_979_000_000 - i,
    str: lambda i: f"\x1fstand-in value {i}\x1f",
    datetime: lambda i: datetime(1, 1, 1, tzinfo=UTC) + timedelta(seconds=i + 1),
}


class _Compiled:
    __slots__ = (
        "sql",
        "params",
        "slots",
        "compiler",
        "model",
        "init_list",
        "start",
        "end",
        "populators",
        "locks",
    )

    def __init__(self, queryset: QuerySet, stand_ins: list, db):
        compiler = queryset.query.get_compiler(using=db.alias)
        sql, params = compiler.as_sql()
        self.params = list(params)
        # Where each value goes; the other parameters are the query's own constants.
        self.slots = []
        for value in stand_ins:
            places = [i for i, param in enumerate(self.params) if param == value]
            if not places:
                raise ValueError(f"{queryset.model.__name__} look-up: a value never reaches the SQL.")
            self.slots.append(places)
        self.sql = sql
        self.compiler = compiler
        self.locks = queryset.query.select_for_update
        klass_info, select = compiler.klass_info, compiler.select
        self.model = klass_info["model"]
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [column[0].target.attname for column in select[self.start : self.end]]
        self.populators = get_related_populators(klass_info, select, db.alias)


class Prepared:
    """A queryset builder whose SQL is compiled once per shape (see the module docstring)."""

    def __init__(self, build: Callable[..., QuerySet]):
        self._build = build
        self._compiled: dict[tuple, _Compiled] = {}

    def all(self, *values, **options) -> list[Model]:
        db = connections[DEFAULT_DB_ALIAS]
        if db.vendor != "postgresql":
            return list(self._build(*values, **options))
        shape = (tuple(sorted(options.items())), tuple(type(v) for v in values))
        compiled = self._compiled.get(shape)
        if compiled is None:
            for value in values:
                if type(value) not in _STAND_INS:
                    raise TypeError(f"Prepared look-ups take int, str or datetime values, not {type(value)}.")
            stand_ins = [_STAND_INS[type(v)](i) for i, v in enumerate(values)]
            compiled = self._compiled[shape] = _Compiled(self._build(*stand_ins, **options), stand_ins, db)
        if compiled.locks and db.get_autocommit():
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        params = list(compiled.params)
        for value, places in zip(values, compiled.slots, strict=True):
            for place in places:
                params[place] = value
        with db.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        objects = []
        for row in compiled.compiler.results_iter(results=[rows]):
            obj = compiled.model.from_db(db.alias, compiled.init_list, row[compiled.start : compiled.end])
            for populator in compiled.populators:
                populator.populate(row, obj)
            objects.append(obj)
        return objects

    def first(self, *values, **options) -> Model | None:
        """The first row's object (build a queryset sliced ``[:1]``), or None."""
        found = self.all(*values, **options)
        return found[0] if found else None
