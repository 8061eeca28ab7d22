"""Guard of the inbox's hand-built SQL (``config/rows.py``, ``config/lookups.py``).

The fast path writes rows with statements of its own instead of ``Model.save`` and
``bulk_create``, and leans on Django internals to do it (``Model._prepare_related_fields_for_save``,
``Field.pre_save``/``get_db_prep_save``, the SQL compiler and ``get_related_populators``).
For every model it writes, each test here writes the same object once through the fast path
and once through Django's own ``save()``/``bulk_create()``, and asserts the stored rows are
the same: every concrete column but the primary key and the ``auto_now``/``auto_now_add``
stamps, read back with ``values()``. A new column, a changed default or a Django upgrade
that changes how a value is prepared shows up here first.

The two writes run one after the other in savepoints rolled back in between, so the same
unique values (a case reference, a delivery id) can be written twice. Foreign keys to rows
written in the same statement are compared as "points at the object written with it".
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import django
import pytest
from django.db import models, transaction

from cases.models import Case, CaseEvent, Message
from config.lookups import Prepared
from config.rows import insert_linked, insert_row, insert_rows, reserve_keys, update_row
from connectors.models import InboundEvent
from customers.models import Customer, Identity
from tests import factories

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

CHECKED_AGAINST = (5, 2)
SENT = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
KEY = uuid.UUID("12345678-1234-5678-1234-567812345678")


def _compared(model: type[models.Model]) -> list[models.Field]:
    """The columns compared: all concrete ones but the key and the automatic stamps."""
    return [
        f
        for f in model._meta.concrete_fields
        if not f.primary_key and not (isinstance(f, models.DateTimeField) and (f.auto_now or f.auto_now_add))
    ]


def _row(obj: models.Model, chain: list[models.Model] = ()) -> dict:
    """``obj``'s stored row by column, a foreign key into ``chain`` as its position there."""
    model = type(obj)
    fields = _compared(model)
    row = model.objects.filter(pk=obj.pk).values(*[f.attname for f in fields]).get()
    keys = {(type(o), o.pk): i for i, o in enumerate(chain)}
    for f in fields:
        if f.is_relation and (f.related_model, row[f.attname]) in keys:
            row[f.attname] = ("written with it", keys[(f.related_model, row[f.attname])])
    stamps = [
        f.attname
        for f in model._meta.concrete_fields
        if isinstance(f, models.DateTimeField) and (f.auto_now or f.auto_now_add)
    ]
    assert all(getattr(model.objects.get(pk=obj.pk), name) is not None for name in stamps)
    if isinstance(row.get("body"), memoryview):
        row["body"] = bytes(row["body"])
    return row


def _rows_written(build: Callable[[], list[models.Model]], write: Callable[[list], None]) -> list[dict]:
    """Build fresh objects, write them with ``write``, read their rows back, roll back."""
    with transaction.atomic():
        objs = build()
        write(objs)
        assert all(o.pk is not None and not o._state.adding for o in objs)
        rows = [_row(o, objs) for o in objs]
        transaction.set_rollback(True)
    return rows


def _save_each(objs: list[models.Model]) -> None:
    for obj in objs:
        obj.save(force_insert=True)


def _bulk_create(objs: list[models.Model]) -> None:
    for obj in objs:
        # As save() would, take the ids of the objects saved just before.
        obj._prepare_related_fields_for_save(operation_name="bulk_create")
        type(obj).objects.bulk_create([obj])


def _with_keys(objs: list[models.Model]) -> None:
    """The inbox batch's way: keys drawn ahead, the rows written later, a statement per model."""
    keys = reserve_keys({type(o): 1 for o in objs})
    for obj in objs:
        obj.pk = keys[type(obj)][0]
    for obj in objs:
        obj._prepare_related_fields_for_save(operation_name="insert")
        insert_rows([obj], with_keys=True)


@pytest.fixture
def conversation():
    """A builder of one new conversation as the inbox writes it: customer, identity, case, message."""
    channel = factories.ChannelFactory()

    def build() -> list[models.Model]:
        customer = Customer(name="Ada Lovelace", tier=Customer.Tier.VIP, notes="Prefers e-mail")
        identity = Identity(
            customer=customer,
            kind="x",
            platform_id="guard-1001",
            handle="ada",
            display_name="Ada",
            follower_count=1234,
            verified=True,
            profile={"locale": "en-GB", "avatar": "https://example.com/a.png"},
        )
        case = Case(
            reference="GUARD-1",
            customer=customer,
            department=channel.department,
            subject="Late parcel, it's 100% lost",
            priority=Case.Priority.HIGH,
            origin_channel=channel,
            last_channel=channel,
            first_inbound_at=SENT,
            last_inbound_at=SENT,
            first_response_due_at=SENT,
            resolution_remaining_seconds=3600,
        )
        message = Message(
            case=case,
            identity=identity,
            channel=channel,
            direction=Message.Direction.IN,
            kind=Message.Kind.DM,
            text="Where is my parcel? ünïcødé 😀",
            external_id="guard-dm-1",
            thread_key="guard-thread",
            triage={"score": -0.5, "flags": [None, True, 3]},
            idempotency_key=KEY,
            sent_at=SENT,
        )
        return [customer, identity, case, message]

    return build


def test_django_is_the_minor_version_the_fast_sql_was_checked_against():
    assert django.VERSION[:2] == CHECKED_AGAINST, (
        f"config/rows.py and config/lookups.py were checked against Django "
        f"{CHECKED_AGAINST[0]}.{CHECKED_AGAINST[1]}; on an upgrade recheck what they borrow from "
        "Django's internals: Model._prepare_related_fields_for_save, Field.pre_save and "
        "get_db_prep_save, Field.is_cached/get_cached_value, _state.adding/_state.db, the SQL "
        "compiler's as_sql/klass_info/select, get_related_populators and Model.from_db; "
        "rerun this module and tests/test_rows.py, then bump CHECKED_AGAINST."
    )


@pytest.mark.parametrize("position", [0, 1, 2, 3], ids=["customer", "identity", "case", "message"])
def test_insert_row_writes_each_model_as_save_does(conversation, position):
    def write_fast(objs):
        for obj in objs:
            insert_row(obj)

    fast = _rows_written(conversation, write_fast)
    django_save = _rows_written(conversation, _save_each)
    assert fast[position] == django_save[position]


def test_insert_linked_writes_a_conversation_as_saving_it_in_order_does(conversation):
    assert _rows_written(conversation, insert_linked) == _rows_written(conversation, _save_each)


def test_keys_drawn_ahead_and_insert_rows_write_as_bulk_create_does(conversation):
    assert _rows_written(conversation, _with_keys) == _rows_written(conversation, _bulk_create)


def test_insert_rows_writes_case_events_as_bulk_create_does(conversation):
    case = conversation()[2]
    case.customer.save()
    case.customer = case.customer
    case.save()
    message = Message.objects.create(case=case, direction="in", kind="dm", sent_at=SENT, idempotency_key=KEY)

    def build():
        return [
            CaseEvent(
                case=case,
                kind=CaseEvent.Kind.STATUS,
                before={"status": "new"},
                after={"status": "open"},
                reason="Reopened by the customer's reply",
                message=message,
            ),
            CaseEvent(case=case, kind=CaseEvent.Kind.CREATED),
        ]

    assert _rows_written(build, insert_rows) == _rows_written(
        build, lambda objs: CaseEvent.objects.bulk_create(objs)
    )


def test_insert_row_on_conflict_writes_an_inbound_event_as_save_does():
    channel = factories.ChannelFactory()

    def build():
        return [
            InboundEvent(
                provider=channel.kind,
                channel=channel,
                delivery_id="guard-delivery-1",
                body=b"\x00\xff{'text': '100%'}",
                headers={"X-Hub-Signature-256": "sha256=abc"},
                content_type="application/json",
            )
        ]

    def write_fast(objs):
        assert insert_row(objs[0], on_conflict="(channel_id, delivery_id) DO NOTHING")

    assert _rows_written(build, write_fast) == _rows_written(build, _save_each)


@pytest.mark.parametrize(
    ("position", "changes"),
    [
        (1, {"handle": "ada_l", "follower_count": 99, "profile": {"locale": "fr"}}),
        (2, {"status": Case.Status.OPEN, "last_inbound_at": SENT, "subject": "Reopened"}),
    ],
    ids=["identity", "case"],
)
def test_update_row_writes_the_named_columns_as_save_update_fields_does(conversation, position, changes):
    def updated(write):
        def run(objs):
            _save_each(objs)
            obj = objs[position]
            for name, value in changes.items():
                setattr(obj, name, value)
            write(obj, [*changes, "updated_at"])

        return run

    fast = _rows_written(conversation, updated(update_row))
    django_save = _rows_written(conversation, updated(lambda obj, names: obj.save(update_fields=names)))
    assert fast == django_save


def test_prepared_look_up_reads_what_the_queryset_reads(conversation):
    objs = conversation()
    _save_each(objs)
    message = objs[3]

    def build(channel_id, external_id, *, locked=False):
        queryset = Message.objects.select_related("case__customer").filter(
            channel_id=channel_id, external_id=external_id
        )
        return queryset.select_for_update(of=("self",)) if locked else queryset

    prepared = Prepared(build)
    with transaction.atomic():
        for _ in range(2):  # the first call compiles, the second runs the remembered SQL
            (found,) = prepared.all(message.channel_id, message.external_id, locked=True)
            (expected,) = build(message.channel_id, message.external_id, locked=True)
            for obj, by_django in ((found, expected), (found.case, expected.case)):
                fields = [f.attname for f in type(obj)._meta.concrete_fields]
                assert [getattr(obj, n) for n in fields] == [getattr(by_django, n) for n in fields]
            assert found.case.customer.name == expected.case.customer.name
