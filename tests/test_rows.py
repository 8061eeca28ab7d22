"""Single-row writes (config.rows): the same row as save() writes, in one statement."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cases.models import Case, CaseEvent, Message
from cases.services import case_build
from config.rows import insert_linked, insert_row, insert_rows, reserve_keys, update_row
from connectors.models import InboundEvent
from customers.models import Customer, Identity
from tests import factories

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _columns(obj) -> dict:
    """Every column of ``obj``'s stored row, by field name."""
    model = type(obj)
    return model.objects.filter(pk=obj.pk).values(*[f.attname for f in model._meta.concrete_fields]).get()


def test_insert_row_stores_what_save_would_and_marks_the_object_saved():
    channel = factories.ChannelFactory()
    customer = Customer(name="Ada")
    # The case is built before its customer is stored: its customer id is taken at insert time.
    case = case_build(customer=customer, channel=channel, subject="Late parcel")
    with CaptureQueriesContext(connection) as queries:
        insert_row(customer)
        insert_row(case)
    assert len(queries) == 2
    assert customer.pk and case.pk
    assert not case._state.adding
    twin = case_build(customer=customer, channel=channel, subject="Late parcel")
    twin.save(force_insert=True)

    stored, by_save = _columns(case), _columns(twin)
    assert stored["customer_id"] == customer.pk
    assert stored["created_at"] is not None and stored["updated_at"] is not None  # auto_now stamps
    different = {"id", "reference", "created_at", "updated_at"}
    assert {k: v for k, v in stored.items() if k not in different} == {
        k: v for k, v in by_save.items() if k not in different
    }


def test_insert_row_raises_djangos_integrity_error_and_on_conflict_keeps_the_row_out():
    identity = factories.IdentityFactory(kind="x", platform_id="42")
    twin = Identity(customer=identity.customer, kind="x", platform_id="42")
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_row(twin)
    assert twin.pk is None

    channel = factories.ChannelFactory()
    first = InboundEvent(channel=channel, delivery_id="d-1", provider=channel.kind, body=b"{}")
    again = InboundEvent(channel=channel, delivery_id="d-1", provider=channel.kind, body=b"{}")
    conflict = "(channel_id, delivery_id) DO NOTHING"
    assert insert_row(first, on_conflict=conflict) is True
    assert insert_row(again, on_conflict=conflict) is False
    assert again.pk is None
    assert InboundEvent.objects.filter(channel=channel, delivery_id="d-1").count() == 1


def test_update_row_writes_only_the_named_columns_and_refuses_a_missing_row():
    channel = factories.ChannelFactory()
    case = case_build(customer=factories.CustomerFactory(), channel=channel, subject="Before")
    insert_row(case)
    before = _columns(case)
    Case.objects.filter(pk=case.pk).update(category="billing")  # written elsewhere meanwhile
    case.subject, case.priority = "After", Case.Priority.HIGH
    case.category = "ignored: not named"

    with CaptureQueriesContext(connection) as queries:
        update_row(case, ["subject", "priority", "updated_at"])
    assert len(queries) == 1

    after = _columns(case)
    assert (after["subject"], after["priority"], after["category"]) == ("After", "high", "billing")
    assert after["updated_at"] > before["updated_at"]
    assert {k: v for k, v in after.items() if k not in {"subject", "priority", "category", "updated_at"}} == {
        k: v for k, v in before.items() if k not in {"subject", "priority", "category", "updated_at"}
    }

    Case.objects.filter(pk=case.pk).delete()
    with pytest.raises(DatabaseError, match="no row was updated"):
        update_row(case, ["subject"])
    with pytest.raises(ValueError, match="not a column"):
        update_row(Message(pk=1), ["id"])


def test_insert_rows_writes_many_in_one_statement_with_their_keys_in_order():
    channel = factories.ChannelFactory()
    case = case_build(customer=factories.CustomerFactory(), channel=channel, subject="Many")
    insert_row(case)
    events = [CaseEvent(case=case, kind=CaseEvent.Kind.NOTE, reason=f"event {i}") for i in range(5)]
    with CaptureQueriesContext(connection) as queries:
        insert_rows(events)
    assert len(queries) == 1
    assert all(not e._state.adding for e in events)
    assert [CaseEvent.objects.get(pk=e.pk).reason for e in events] == [f"event {i}" for i in range(5)]
    assert all(e.created_at is not None for e in events)


def test_insert_linked_writes_a_new_conversation_in_one_statement():
    channel = factories.ChannelFactory()
    customer = Customer(name="Grace")
    identity = Identity(customer=customer, kind="x", platform_id="1001", handle="grace")
    case = case_build(customer=customer, channel=channel, subject="Refund")
    message = Message(
        case=case,
        identity=identity,
        channel=channel,
        direction=Message.Direction.IN,
        kind=Message.Kind.DM,
        text="Where is my refund?",
        external_id="dm-1",
        sent_at=timezone.now(),
    )
    with CaptureQueriesContext(connection) as queries:
        insert_linked([customer, identity, case, message])
    assert len(queries) == 1

    # Keys set, links taken, related objects still cached (no query to read them).
    assert all(o.pk and not o._state.adding for o in (customer, identity, case, message))
    with CaptureQueriesContext(connection) as queries:
        assert (identity.customer, case.customer, message.case, message.identity) == (
            customer,
            customer,
            case,
            identity,
        )
    assert len(queries) == 0
    stored = Message.objects.select_related("case__customer", "identity").get(pk=message.pk)
    assert (stored.case_id, stored.identity_id, stored.case.customer_id) == (
        case.pk,
        identity.pk,
        customer.pk,
    )
    assert stored.identity.customer_id == customer.pk
    assert stored.channel_id == channel.pk  # a stored object's key is written as save writes it


def test_insert_linked_writes_nothing_when_one_row_is_refused():
    taken = factories.IdentityFactory(kind="x", platform_id="42")
    customer = Customer(name="Twin")
    twin = Identity(customer=customer, kind="x", platform_id="42")
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_linked([customer, twin])
    assert Customer.objects.filter(name="Twin").count() == 0
    assert Identity.objects.filter(platform_id="42").get() == taken


def test_insert_linked_leaves_out_what_is_stored_already():
    customer = factories.CustomerFactory(name="Stored")
    identity = Identity(customer=customer, kind="x", platform_id="2002")
    with CaptureQueriesContext(connection) as queries:
        insert_linked([customer, identity])
    assert len(queries) == 1 and "customers_customer" not in queries[0]["sql"].split("VALUES")[0]
    assert Identity.objects.get(pk=identity.pk).customer_id == customer.pk
    assert Customer.objects.filter(name="Stored").count() == 1


def test_values_are_bound_as_literals_that_come_back_unchanged():
    """The statements bind their values themselves (``config.rows._execute``): quotes,
    backslashes, per cent signs, placeholders inside text, other scripts, JSON and bytes
    are stored exactly as given."""
    channel = factories.ChannelFactory()
    text = "It's 100% broken \\ %s %(name)s '; DROP TABLE cases_message; -- ünïcødé 日本語 😀\n\ttab"
    case = case_build(customer=factories.CustomerFactory(), channel=channel, subject=text[:255])
    message = Message(
        case=case,
        direction=Message.Direction.IN,
        kind=Message.Kind.EMAIL,
        text=text,
        channel=channel,
        external_id="<a%b@example.com>",
        sent_at=timezone.now(),
        triage={"text": text, "score": -0.5, "flags": [None, True, 3]},
    )
    insert_linked([case, message])
    event = InboundEvent(channel=channel, delivery_id="100%", provider=channel.kind, body=b"\x00\xff'\\%s")
    insert_row(event)

    stored = Message.objects.get(pk=message.pk)
    assert (stored.text, stored.external_id, stored.triage) == (text, "<a%b@example.com>", message.triage)
    assert Case.objects.get(pk=case.pk).subject == text[:255]
    assert bytes(InboundEvent.objects.get(pk=event.pk).body) == b"\x00\xff'\\%s"
    assert InboundEvent.objects.get(pk=event.pk).delivery_id == "100%"


def test_a_statement_with_a_stray_per_cent_sign_is_refused():
    channel = factories.ChannelFactory()
    event = InboundEvent(channel=channel, delivery_id="d-2", provider=channel.kind, body=b"{}")
    with pytest.raises(ValueError, match="per cent"):
        insert_row(event, on_conflict="(channel_id, delivery_id) DO UPDATE SET error = '100%'")
    assert event.pk is None


def test_keys_drawn_ahead_are_written_and_never_drawn_again():
    keys = reserve_keys({Customer: 3, Identity: 2})
    assert len(keys[Customer]) == 3 and len(set(keys[Customer])) == 3 and len(keys[Identity]) == 2
    customers = [Customer(pk=pk, name=f"Drawn {pk}") for pk in keys[Customer]]
    identities = [
        Identity(pk=pk, customer=customer, kind="x", platform_id=str(pk))
        for pk, customer in zip(keys[Identity], customers, strict=False)
    ]
    with CaptureQueriesContext(connection) as queries:
        insert_rows(customers, with_keys=True)
        insert_rows(identities, with_keys=True)
    assert len(queries) == 2
    assert (
        sorted(Customer.objects.filter(name__startswith="Drawn").values_list("pk", flat=True))
        == keys[Customer]
    )
    assert {i.customer_id for i in Identity.objects.filter(pk__in=keys[Identity])} == set(keys[Customer][:2])
    later = Customer.objects.create(name="Later")  # the sequence has moved past the drawn keys
    assert later.pk > max(keys[Customer])
