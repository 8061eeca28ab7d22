"""``manage.py generate_load``: bulk benchmark data that is still consistent data."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, F

from cases.models import REFERENCE_PATTERN, Case, CaseEvent, Message
from connectors.models import Channel
from customers.identifiers import normalize_platform_id
from customers.models import Customer, Identity

REFERENCE = re.compile(rf"C-{REFERENCE_PATTERN}")
METHODS = ["orm", pytest.param("copy", marks=pytest.mark.postgres)]


def load(**options) -> dict:
    out = io.StringIO()
    call_command("generate_load", json=True, stdout=out, **options)
    return json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.mark.parametrize("method", METHODS)
def test_generate_load_writes_consistent_cases(db, method):
    before = datetime.now(UTC)
    # 200 cases in batches of 64: three full batches and a short one.
    result = load(cases=200, messages_per_case=5, batch=64, method=method, seed=7)
    after = datetime.now(UTC)

    assert result["method"] == method
    assert result["counts"]["cases"] == Case.objects.count() == 200
    assert result["counts"]["messages"] == Message.objects.count() == 1000
    assert result["counts"]["customers"] == Customer.objects.count()
    assert result["counts"]["identities"] == Identity.objects.count()
    assert result["rows_per_second"] > 0
    assert CaseEvent.objects.filter(kind="created").count() == 200

    references = list(Case.objects.values_list("reference", flat=True))
    assert all(REFERENCE.fullmatch(ref) for ref in references)
    assert len(set(references)) == 200

    # Every case belongs to a customer who has an identity, and its inbound messages
    # come from that customer's identity.
    assert not Case.objects.filter(customer__identities__isnull=True).exists()
    assert not (
        Message.objects.filter(identity__isnull=False)
        .exclude(identity__customer=F("case__customer"))
        .exists()
    )
    for kind, platform_id in Identity.objects.values_list("kind", "platform_id"):
        assert normalize_platform_id(kind, platform_id) == platform_id
    assert set(Message.objects.values("case").annotate(n=Count("id")).values_list("n", flat=True)) == {5}

    # Spread over departments, channels and statuses, mostly open.
    assert Case.objects.values("department").distinct().count() >= 3
    assert Case.objects.values("origin_channel__kind").distinct().count() >= 4
    assert Case.objects.filter(status__in=Case.OPEN_STATUSES).count() > 100

    # History in time order: a case starts with its first message.
    for case in Case.objects.all()[:50]:
        times = list(case.messages.order_by("sent_at", "id").values_list("sent_at", flat=True))
        assert case.created_at == case.first_inbound_at == times[0]
        assert times[-1] < after

    # Service clocks agree with the messages and with the time.
    running = Case.objects.filter(status__in=["new", "open"])
    assert running.exists() and not running.filter(due_at__isnull=True).exists()
    assert not running.filter(due_at__lte=before).exclude(sla_state="breached").exists()
    assert not running.filter(at_risk_at__gt=after).exclude(sla_state="ok").exists()
    assert not Case.objects.filter(status__in=["resolved", "closed"], due_at__isnull=False).exists()
    assert not Case.objects.filter(status="new", first_responded_at__isnull=False).exists()


def test_generate_load_creates_the_organisation_it_needs(db):
    assert not Channel.objects.exists()

    load(cases=10, messages_per_case=2, seed=1)

    assert Channel.objects.count() == 6
    assert all(channel.promise for channel in Channel.objects.all())


@pytest.mark.parametrize("method", METHODS)
def test_generate_load_runs_again_without_collisions(db, method):
    load(cases=40, messages_per_case=3, method=method, seed=1)
    # The same seed again: platform ids, references and external ids must still be new.
    load(cases=40, messages_per_case=3, method=method, seed=1)

    assert Case.objects.count() == 80
    assert Message.objects.count() == 240
    assert Identity.objects.values("kind", "platform_id").distinct().count() == Identity.objects.count()


def test_generate_load_refuses_bad_arguments(db):
    with pytest.raises(CommandError, match="messages-per-case must be at least 1"):
        call_command("generate_load", cases=5, messages_per_case=0, stdout=io.StringIO())
