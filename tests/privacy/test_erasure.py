"""Erasing a customer: seeded on every channel through the real ingest path, erased, and then
every text, JSON and binary column of every table is scanned for anything of theirs."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.db import connection

from cases import privacy, services
from cases.errors import ServiceError
from cases.models import Attachment, Case, CaseEvent, Message
from connectors import inbox, webhooks_out
from connectors.models import InboundEvent, WebhookDelivery
from customers.models import Customer, CustomerMerge, ErasureRequest, Identity, IdentitySuggestion
from tests import factories

from .seed import DANA, OTHER, seed

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def leftovers(strings: list[str]) -> set[tuple[str, str, str]]:
    """(table, column, string) for every column of every table holding any of ``strings``,
    case-insensitively: each column read as text (binary ones escaped), whatever its type."""
    found = set()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
            "JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
        )
        columns = cursor.fetchall()
        assert len({table for table, _, _ in columns}) > 30  # the whole schema, not a handful of tables
        for table, column, data_type in columns:
            value = f"encode(\"{column}\", 'escape')" if data_type == "bytea" else f'"{column}"::text'
            for string in strings:
                cursor.execute(f'SELECT 1 FROM "{table}" WHERE {value} ILIKE %s LIMIT 1', [f"%{string}%"])  # noqa: S608
                if cursor.fetchone():
                    found.add((table, column, string))
    return found


def files_under(root) -> dict[str, bytes]:
    return (
        {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
        if root.exists()
        else {}
    )


@pytest.fixture
def world(
    client,
    platform_channels,
    media_root,
    admin_user,
    agent,
    department,
    other_department,
    django_capture_on_commit_callbacks,
    monkeypatch,
):
    # An integrator subscribed to messages: their payloads hold the texts. Nothing is sent.
    monkeypatch.setattr(webhooks_out, "_queue", lambda ids: None)
    webhooks_out.webhook_subscription_create(
        name="CRM",
        url="https://crm.example.test/hook",
        event_types=["message.received", "case.created"],
        actor=admin_user,
    )
    dana = seed(client, django_capture_on_commit_callbacks, DANA, actor=admin_user)
    other = seed(client, django_capture_on_commit_callbacks, OTHER, actor=admin_user)
    case = Case.objects.filter(customer=dana).order_by("pk").first()
    # Agents write about her: a note, and a transfer with a reason and a hand-over note.
    services.message_add(
        case=case, direction="note", kind="note", text=f"Called {DANA.name} back", author=agent
    )
    services.case_transfer(
        case=case,
        to_department=other_department,
        actor=admin_user,
        reason=f"{DANA.name} wants billing",
        note=f"{DANA.marker}: refund owed",
    )
    # Ingest's note when she wrote on someone else's thread names her identity on their case.
    other_case = Case.objects.filter(customer=other).order_by("pk").first()
    services.record_event(
        case=other_case,
        kind=CaseEvent.Kind.MESSAGE_IN,
        reason=f"Written by X identity @dana_{DANA.marker} of customer #{dana.pk}, not the case's customer.",
        after={"phone": DANA.phone},
    )
    LogEntry.objects.log_actions(
        user_id=admin_user.pk, queryset=[dana], action_flag=CHANGE, change_message=f"Renamed {DANA.name}"
    )
    return dana, other


def test_the_seed_reaches_every_table_it_should(world):
    dana, other = world
    assert InboundEvent.objects.filter(status="processed").count() == 12
    assert dana.identities.count() == 5 and other.identities.count() == 5
    assert Attachment.objects.filter(message__case__customer=dana).exclude(file="").count() == 1
    assert Message.objects.filter(case__customer=dana).exclude(recording_url="").count() == 1
    assert IdentitySuggestion.objects.filter(identity__customer=dana).exists()
    assert CustomerMerge.objects.filter(target=dana).count() == 4
    assert WebhookDelivery.objects.filter(event_type="message.received").count() == 10
    held = {(table, column) for table, column, _ in leftovers(DANA.strings)}
    assert {
        ("customers_customer", "name"),
        ("customers_identity", "platform_id"),
        ("cases_message", "text"),
        ("cases_message", "html"),
        ("cases_message", "subject"),
        ("cases_message", "recording_url"),
        ("cases_attachment", "filename"),
        ("cases_case", "handoff_note"),
        ("cases_caseevent", "reason"),
        ("connectors_inboundevent", "body"),
        ("connectors_inboundevent", "delivery_id"),
        ("connectors_webhookdelivery", "payload"),
        ("customers_identitysuggestion", "value"),
        ("customers_customermerge", "target_before"),
        ("django_admin_log", "object_repr"),
        ("cases_satisfactionsurvey", "comment"),
    } <= held


def test_erasure_leaves_nothing_of_theirs_and_everything_of_others(
    client, world, admin_user, media_root, django_capture_on_commit_callbacks
):
    dana, other = world
    dana_cases = set(Case.objects.filter(customer=dana).values_list("pk", flat=True))
    messages_before = Message.objects.filter(case_id__in=dana_cases).count()
    events_before = CaseEvent.objects.filter(case_id__in=dana_cases).count()
    other_before = leftovers(OTHER.strings)
    files_before = files_under(media_root)
    assert any(DANA.marker.encode() in content for content in files_before.values())

    # when an admin erases her through the API
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/v1/customers/{dana.pk}/erase/", {"confirm": dana.pk}, content_type="application/json"
        )

    # then nothing of hers is left in any column of any table, nor in the media folder
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "completed" and body["customer_ids"] == [dana.pk]
    assert body["counts"]["inbound_events"] == 6 and body["counts"]["attachments"] == 1
    assert body["counts"]["survey_comments"] == 1
    assert leftovers(DANA.strings) == set()
    files_after = files_under(media_root)
    assert not any(DANA.marker.encode() in content for content in files_after.values())

    # the audit trail and the timeline's shape are kept, pseudonymised
    dana.refresh_from_db()
    assert dana.name == f"Erased customer #{dana.pk}" and dana.erased_at is not None
    assert set(Case.objects.filter(customer=dana).values_list("pk", flat=True)) == dana_cases
    assert Message.objects.filter(case_id__in=dana_cases).count() == messages_before
    assert CaseEvent.objects.filter(case_id__in=dana_cases).count() == events_before
    assert not Identity.objects.filter(customer=dana).exists()
    erased_events = InboundEvent.objects.filter(headers__has_key=privacy.ERASED_HEADER)
    assert erased_events.count() == 6 and not erased_events.exclude(body=b"").exists()
    assert ErasureRequest.objects.get(customer_ids=[dana.pk]).requested_by == admin_user

    # and the other customer's data is exactly where it was
    assert leftovers(OTHER.strings) == other_before
    elsewhere = CaseEvent.objects.filter(case__customer=other, reason__contains="Written by").get()
    assert (
        elsewhere.reason
        == f"Written by X identity {dana.name} of customer #{dana.pk}, not the case's customer."
    )
    assert elsewhere.after == {"phone": dana.name}
    assert (
        {f for f in files_after if OTHER.marker in f}
        == {f for f in files_before if OTHER.marker in f}
        != set()
    )
    other.refresh_from_db()
    assert other.name == OTHER.name and other.identities.count() == 5


def test_erased_inbound_events_are_never_processed_again(
    client, world, admin_user, django_capture_on_commit_callbacks
):
    dana, _ = world
    (event,) = [e for e in InboundEvent.objects.all() if DANA.fb_psid.encode() in bytes(e.body)]
    InboundEvent.objects.filter(pk=event.pk).update(status=InboundEvent.Status.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        privacy.customer_erase(customer=dana, actor=admin_user)
    event.refresh_from_db()
    assert event.status == InboundEvent.Status.IGNORED and "Body erased" in event.error
    assert inbox.inbound_event_process(event_id=event.pk).status == InboundEvent.Status.IGNORED


def test_erasure_refuses_twice_a_merged_away_customer_and_non_admins(
    client, world, admin_user, agent, supervisor
):
    dana, other = world
    merged_away = Customer.objects.filter(merged_into=dana).first()
    client.force_login(admin_user)
    refused = client.post(
        f"/api/v1/customers/{merged_away.pk}/erase/",
        {"confirm": merged_away.pk},
        content_type="application/json",
    )
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "merged"
    wrong = client.post(
        f"/api/v1/customers/{dana.pk}/erase/", {"confirm": other.pk}, content_type="application/json"
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["field"] == "confirm"
    missing = client.post(f"/api/v1/customers/{dana.pk}/erase/", {}, content_type="application/json")
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "confirm"

    client.force_login(supervisor)
    denied = client.post(
        f"/api/v1/customers/{dana.pk}/erase/", {"confirm": dana.pk}, content_type="application/json"
    )
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "not_permitted"
    assert Customer.objects.get(pk=dana.pk).erased_at is None

    client.force_login(admin_user)
    assert (
        client.post(
            f"/api/v1/customers/{dana.pk}/erase/", {"confirm": dana.pk}, content_type="application/json"
        ).status_code
        == 200
    )
    again = client.post(
        f"/api/v1/customers/{dana.pk}/erase/", {"confirm": dana.pk}, content_type="application/json"
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_erased"


def test_a_merge_chain_is_one_person_and_its_merges_cannot_be_undone_after(channel, admin_user):
    first, second, last = (factories.CustomerFactory(name=f"Chain {n} {DANA.marker}") for n in range(3))
    for customer in (first, second, last):
        factories.IdentityFactory(
            customer=customer, kind="email", platform_id=f"c{customer.pk}.{DANA.marker}@x.test"
        )
        services.case_open(customer=customer, channel=channel, subject=f"{DANA.marker} subject")
    services.customer_merge(source=first, target=second, actor=admin_user)
    services.customer_merge(source=second, target=last, actor=admin_user)

    privacy.customer_erase(customer=last, actor=admin_user)

    for customer in (first, second, last):
        customer.refresh_from_db()
        assert customer.erased_at is not None and customer.name == f"Erased customer #{customer.pk}"
    assert not Identity.objects.exists() and not CustomerMerge.objects.exists()
    assert set(Case.objects.values_list("subject", flat=True)) == {privacy.ERASED}
    with pytest.raises(ServiceError):
        services.customer_unmerge(source=second, actor=admin_user)
