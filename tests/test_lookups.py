"""Prepared look-ups (config.lookups): compiled once, the same objects as the queryset."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.db import transaction
from django.db.models.sql.compiler import SQLCompiler
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from cases.models import Case, Message
from cases.services import case_build
from config.lookups import Prepared
from config.rows import insert_row
from tests import factories

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _messages(channel_id, external_id, *, lock=False):
    rows = Message.objects.select_related("case__customer")
    if lock:
        rows = rows.select_for_update(of=("case",))
    return rows.filter(channel_id=channel_id, external_id=external_id).order_by()[:1]


by_platform_id = Prepared(_messages)


def _conversation(external_id: str, *, tier: str = "standard"):
    channel = factories.ChannelFactory()
    customer = factories.CustomerFactory(tier=tier)
    case = case_build(customer=customer, channel=channel, subject=f"About {external_id}")
    insert_row(case)
    message = Message.objects.create(
        case=case,
        channel=channel,
        direction=Message.Direction.IN,
        kind=Message.Kind.DM,
        text="Where is my parcel?",
        external_id=external_id,
        sent_at=timezone.now(),
        triage={"score": 3, "reasons": ["question"]},
    )
    return channel, message


def test_the_same_objects_as_the_queryset_with_related_rows_and_converted_values():
    channel, stored = _conversation("m-1", tier="vip")

    found = by_platform_id.first(channel.pk, "m-1")
    expected = _messages(channel.pk, "m-1")[0]

    assert found == expected and not found._state.adding
    assert found.triage == {"score": 3, "reasons": ["question"]}  # JSON read back as a dict
    assert found.sent_at == expected.sent_at and found.sent_at.tzinfo is not None
    assert Message.case.is_cached(found) and Case.customer.is_cached(found.case)
    assert (found.case.reference, found.case.customer.tier) == (stored.case.reference, "vip")
    assert by_platform_id.first(channel.pk, "no-such-id") is None


def test_each_shape_is_compiled_once():
    first_channel, _ = _conversation("m-1")
    second_channel, _ = _conversation("m-2")
    prepared = Prepared(_messages)
    with mock.patch.object(SQLCompiler, "as_sql", autospec=True, side_effect=SQLCompiler.as_sql) as compiled:
        assert prepared.first(first_channel.pk, "m-1").external_id == "m-1"
        assert prepared.first(second_channel.pk, "m-2").external_id == "m-2"
        assert prepared.first(first_channel.pk, "m-2") is None
        assert compiled.call_count == 1
        with transaction.atomic():
            assert prepared.first(second_channel.pk, "m-2", lock=True).case_id
            assert prepared.first(first_channel.pk, "m-1", lock=True).case_id
        assert compiled.call_count == 2  # the locking shape is a shape of its own


def test_values_in_a_range_comparison_and_constants_beside_them():
    channel, message = _conversation("m-1")
    since = Prepared(
        lambda channel_id, after: Message.objects.filter(
            channel_id=channel_id, sent_at__gte=after, direction__in=["in", "out"]
        ).order_by("id")[:5]
    )
    assert since.all(channel.pk, message.sent_at - timedelta(minutes=1)) == [message]
    assert since.all(channel.pk, message.sent_at + timedelta(minutes=1)) == []


@pytest.mark.django_db(transaction=True)
def test_a_lock_outside_a_transaction_is_refused_like_the_queryset():
    channel, _ = _conversation("m-1")
    with transaction.atomic():
        by_platform_id.first(channel.pk, "m-1", lock=True)  # compiled inside
    with pytest.raises(TransactionManagementError):
        by_platform_id.first(channel.pk, "m-1", lock=True)


def test_builders_whose_sql_depends_on_the_value_are_refused():
    changed = Prepared(lambda text: Message.objects.filter(text__icontains=text)[:1])
    with pytest.raises(ValueError, match="never reaches the SQL"):
        changed.first("parcel")
    with pytest.raises(TypeError, match="int, str or datetime"):
        by_platform_id.first(None, "m-1")
