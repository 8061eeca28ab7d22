"""cases.ingest: which case a message lands on, who wrote it, and that nothing is stored twice."""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection, connections
from django.utils import timezone

from cases import ingest, services
from cases.errors import ServiceError
from cases.models import Case, CaseEvent, Message
from connectors import webhooks_out
from connectors.base import DeliveryUpdate, InboundAttachment, InboundMessage
from customers import services as customer_services
from customers.errors import CustomerRefused
from customers.models import Customer, Identity
from tests import factories

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def tweet(external_id: str, *, author: str = "5150", at: datetime = T0, **extra) -> InboundMessage:
    values = {
        "platform": "x",
        "external_id": external_id,
        "author_id": author,
        "kind": "post",
        "sent_at": at,
        "text": f"tweet {external_id} @brand",
        "is_public": True,
        "author_handle": f"user{author}",
    }
    return InboundMessage(**(values | extra))


def dm(external_id: str, *, author: str = "5150", at: datetime = T0, **extra) -> InboundMessage:
    return tweet(external_id, author=author, at=at, kind="dm", is_public=False, **extra)


def mail(
    external_id: str, *, author: str = "rosa@example.test", at: datetime = T0, **extra
) -> InboundMessage:
    values = {
        "platform": "email",
        "external_id": external_id,
        "author_id": author,
        "kind": "email",
        "sent_at": at,
        "text": "Hello",
        "subject": "Router",
    }
    return InboundMessage(**(values | extra))


@pytest.fixture
def mailboxes(department):
    support = factories.ChannelFactory(kind="email", slug="support-mail", department=department)
    billing = factories.ChannelFactory(kind="email", slug="billing-mail", department=department)
    return support, billing


# --- idempotency ------------------------------------------------------------------------


def test_the_same_platform_message_twice_is_one_message(channel):
    first = ingest.ingest(channel=channel, inbound=tweet("t1"))
    second = ingest.ingest(channel=channel, inbound=replace(tweet("t1"), text="edited copy"))

    assert first.pk == second.pk
    assert Message.objects.count() == 1 and Case.objects.count() == 1 and Customer.objects.count() == 1
    assert Message.objects.get().text == "tweet t1 @brand"


def test_the_same_id_on_another_channel_is_another_message(channel, department):
    other = factories.ChannelFactory(kind="x", slug="brand-x-uk", department=department, account_id="778")

    a = ingest.ingest(channel=channel, inbound=tweet("t1"))
    b = ingest.ingest(channel=other, inbound=tweet("t1"))

    assert a.pk != b.pk and a.case_id == b.case_id  # same customer, open case


def test_insert_race_returns_the_row_the_other_worker_stored(channel, monkeypatch):
    stored = ingest.ingest(channel=channel, inbound=tweet("t1"))
    real_existing = ingest._existing
    lookups = []

    def stale_first_read(ch, external_id):
        lookups.append(external_id)
        return None if len(lookups) == 1 else real_existing(ch, external_id)

    # The batch context's look-up and the retry after the insert race, where each is used.
    monkeypatch.setattr(ingest.batch, "_existing", stale_first_read)
    monkeypatch.setattr(ingest.inbound, "_existing", stale_first_read)

    again = ingest.ingest(channel=channel, inbound=tweet("t1"))

    assert again.pk == stored.pk and len(lookups) == 2
    assert Message.objects.count() == 1 and CaseEvent.objects.filter(kind="message_in").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_store_one_message_one_customer(channel):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    barrier = threading.Barrier(4)
    results, errors = [], []

    def worker(external_id):
        try:
            barrier.wait(timeout=5)
            results.append(ingest.ingest(channel=channel, inbound=tweet(external_id, author="9999")).pk)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    # Two re-deliveries of one tweet and two new tweets, all from a first-time author.
    threads = [threading.Thread(target=worker, args=(eid,)) for eid in ("a", "a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Message.objects.count() == 3 and len(set(results)) == 3
    assert Identity.objects.count() == 1 and Customer.objects.count() == 1


# --- threading rules -----------------------------------------------------------------------


def test_reply_chain_threads_and_sets_reply_to(channel):
    root = ingest.ingest(channel=channel, inbound=tweet("t1"))
    other_case = services.case_open(customer=root.case.customer, channel=channel)

    reply = ingest.ingest(channel=channel, inbound=tweet("t2", reply_to_external_id="t1"))

    assert reply.case == root.case != other_case
    assert reply.reply_to == root and reply.in_reply_to_external_id == "t1"


def test_email_reply_threads_across_mailboxes_by_message_id(mailboxes):
    support, billing = mailboxes
    first = ingest.ingest(channel=support, inbound=mail("<a1@mail.example>"))

    answer = ingest.ingest(
        channel=billing,
        inbound=mail(
            "<a2@mail.example>", author="someone.else@example.test", reply_to_external_id="<a1@mail.example>"
        ),
    )

    assert answer.case == first.case and answer.reply_to == first
    assert first.thread_key == "<a1@mail.example>"


def test_email_known_only_through_references_threads(mailboxes):
    support, billing = mailboxes
    root = ingest.ingest(channel=support, inbound=mail("<r1@mail.example>"))
    services.case_set_status(case=root.case, status="closed", actor=None)

    late = ingest.ingest(
        channel=billing,
        inbound=mail(
            "<r3@mail.example>",
            at=T0 + timedelta(days=60),
            reply_to_external_id="<r2-never-seen@mail.example>",
            thread_keys=("<r1@mail.example>", "<r2-never-seen@mail.example>"),
        ),
    )

    assert late.case == root.case and late.reply_to is None
    assert late.thread_key == "<r1@mail.example>"
    late.case.refresh_from_db()
    assert late.case.status == Case.Status.OPEN


def test_x_thread_keys_match_only_on_the_same_channel(channel, department):
    other = factories.ChannelFactory(kind="x", slug="brand-x-uk", department=department, account_id="778")
    quoted = ingest.ingest(channel=other, inbound=tweet("q1", author="1"))

    quote = ingest.ingest(channel=channel, inbound=tweet("q2", author="2", thread_keys=("q1",)))

    assert quote.case != quoted.case


def test_quote_of_our_reply_lands_on_the_case_by_thread_key(channel, agent):
    root = ingest.ingest(channel=channel, inbound=tweet("t1"))
    services.message_add(
        case=root.case,
        direction="out",
        kind="post",
        text="Sorry!",
        channel=channel,
        external_id="ours-1",
        author=agent,
    )
    services.case_set_status(case=root.case, status="closed", actor=None)

    quote = ingest.ingest(
        channel=channel, inbound=tweet("t9", at=T0 + timedelta(days=90), thread_keys=("ours-1",))
    )

    assert quote.case == root.case


def test_reference_token_in_an_email_from_a_new_address_links_it_to_the_case_customer(channel, mailboxes):
    support, _ = mailboxes
    opened = ingest.ingest(channel=channel, inbound=tweet("t1"))
    reference = opened.case.reference

    message = ingest.ingest(
        channel=support, inbound=mail("<m1@home.example>", subject=f"Re: your case [#{reference}]")
    )

    assert message.case == opened.case
    identity = Identity.objects.get(kind="email")
    assert identity.customer == opened.case.customer and identity.link_source == "verified"
    assert Customer.objects.count() == 1
    assert "linked to customer" in CaseEvent.objects.get(message=message).reason
    # A new address of a known customer: the tweet counts as repeat contact.
    assert message.triage["repeat_contacts"] == 1


def test_reference_token_in_a_public_post_by_a_stranger_keeps_customers_apart(channel):
    opened = ingest.ingest(channel=channel, inbound=tweet("t1"))

    message = ingest.ingest(
        channel=channel, inbound=tweet("t2", author="6160", text=f"lol {opened.case.reference} same here")
    )

    assert message.case == opened.case
    assert message.identity.customer != opened.case.customer
    assert Customer.objects.count() == 2
    reason = CaseEvent.objects.get(message=message).reason
    assert "customers kept apart" in reason and "public post" in reason


def test_stranger_replying_in_a_public_thread_is_not_linked(channel):
    root = ingest.ingest(channel=channel, inbound=tweet("t1"))

    chime_in = ingest.ingest(channel=channel, inbound=tweet("t2", author="6160", reply_to_external_id="t1"))

    assert chime_in.case == root.case and chime_in.reply_to == root
    assert chime_in.identity.customer_id != root.identity.customer_id


def test_reference_to_a_case_merged_away_lands_on_the_case_it_went_into(channel, mailboxes, agent):
    support, _ = mailboxes
    first = ingest.ingest(channel=channel, inbound=tweet("t1")).case
    second = ingest.ingest(channel=channel, inbound=dm("d1", author="6160", text="Router again")).case
    third = ingest.ingest(channel=channel, inbound=dm("d2", author="7170", text="Router too")).case
    services.case_merge(source=first, target=second, actor=None, reason="Same outage")
    services.case_merge(source=second, target=third, actor=None, reason="Same outage")

    message = ingest.ingest(
        channel=support, inbound=mail("<m9@home.example>", subject=f"Re: [#{first.reference}] still down")
    )

    first.refresh_from_db()
    assert first.status == Case.Status.CLOSED and first.messages.count() == 0
    assert message.case == third
    assert third.messages.filter(pk=message.pk).exists()


def test_references_of_both_lengths_thread_new_ones_have_six_characters(channel):
    opened = ingest.ingest(channel=channel, inbound=tweet("t1"))
    assert re.fullmatch(r"C-[0-9A-Z]{6}", opened.case.reference)
    older = ingest.ingest(channel=channel, inbound=tweet("t2", author="other")).case
    Case.objects.filter(pk=older.pk).update(reference="C-7Q4K2")  # issued before references grew

    by_new = ingest.ingest(
        channel=channel, inbound=dm("d1", author="third", text=f"about {opened.case.reference}")
    )
    by_old = ingest.ingest(channel=channel, inbound=dm("d2", author="fourth", text="about c-7q4k2 please"))

    assert by_new.case == opened.case and by_old.case == older


def test_unknown_reference_token_opens_a_new_case(channel):
    message = ingest.ingest(channel=channel, inbound=dm("d1", text="about C-ZZZZZ please"))
    assert Case.objects.count() == 1 and message.case.reference != "C-ZZZZZ"


def test_new_case_takes_subject_from_the_message_and_the_channel_department(channel, mailboxes):
    long_text = "word " * 40
    from_x = ingest.ingest(channel=channel, inbound=tweet("t1", text=long_text))
    from_mail = ingest.ingest(channel=mailboxes[0], inbound=mail("<s@x>", author="new@example.test"))

    assert from_x.case.subject == " ".join(long_text.split())[:80]
    assert from_mail.case.subject == "Router"
    assert from_x.case.department == channel.department and from_x.case.origin_channel == channel


# --- the reopen window ---------------------------------------------------------------------


@pytest.mark.parametrize(("days_later", "same_case"), [(6, True), (8, False)])
@pytest.mark.parametrize("ended", ["resolved", "closed"])
def test_message_after_a_case_ended_reopens_it_only_within_the_window(
    channel, settings, ended, days_later, same_case
):
    settings.CASE_REOPEN_WINDOW_DAYS = 7
    with time_machine.travel(T0, tick=False):
        first = ingest.ingest(channel=channel, inbound=tweet("t1", at=timezone.now()))
        services.case_set_status(case=first.case, status=ended, actor=None)

    with time_machine.travel(T0 + timedelta(days=days_later), tick=False):
        follow_up = ingest.ingest(channel=channel, inbound=dm("d1", at=timezone.now()))

    follow_up.case.refresh_from_db()
    assert (follow_up.case == first.case) is same_case
    assert follow_up.case.status == Case.Status.OPEN if same_case else Case.Status.NEW
    assert Customer.objects.count() == 1


@pytest.mark.parametrize(
    ("channel_days", "days_later", "same_case"),
    [
        (30, 20, True),
        (30, 31, False),
        (2, 3, False),
        (2, 1, True),
        (0, 1, False),
        (None, 6, True),
        (None, 8, False),
    ],
)
def test_the_channel_s_own_reopen_window_overrides_the_site_wide_one(
    channel, settings, channel_days, days_later, same_case
):
    settings.CASE_REOPEN_WINDOW_DAYS = 7
    channel.reopen_window_days = channel_days
    channel.save()
    with time_machine.travel(T0, tick=False):
        first = ingest.ingest(channel=channel, inbound=tweet("t1", at=timezone.now()))
        services.case_set_status(case=first.case, status="closed", actor=None)

    with time_machine.travel(T0 + timedelta(days=days_later), tick=False):
        follow_up = ingest.ingest(channel=channel, inbound=dm("d1", at=timezone.now()))

    assert (follow_up.case == first.case) is same_case
    assert Case.objects.count() == (1 if same_case else 2)


def test_the_window_is_the_one_of_the_channel_the_message_arrives_on(channel, department, settings):
    settings.CASE_REOPEN_WINDOW_DAYS = 7
    patient = factories.ChannelFactory(
        kind="x", slug="brand-x-dm", department=department, reopen_window_days=60
    )
    with time_machine.travel(T0, tick=False):
        first = ingest.ingest(channel=channel, inbound=tweet("t1", at=timezone.now()))
        services.case_set_status(case=first.case, status="resolved", actor=None)

    with time_machine.travel(T0 + timedelta(days=30), tick=False):
        on_patient = ingest.ingest(channel=patient, inbound=dm("d1", at=timezone.now()))
        services.case_set_status(case=on_patient.case, status="resolved", actor=None)
    assert on_patient.case == first.case

    with time_machine.travel(T0 + timedelta(days=45), tick=False):
        on_default = ingest.ingest(channel=channel, inbound=dm("d2", at=timezone.now()))
    assert on_default.case != first.case


def test_batch_ingest_uses_the_channel_s_reopen_window(channel, settings):
    settings.CASE_REOPEN_WINDOW_DAYS = 30
    channel.reopen_window_days = 1
    channel.save()
    with time_machine.travel(T0, tick=False):
        first = ingest.ingest(channel=channel, inbound=tweet("t1", at=timezone.now()))
        services.case_set_status(case=first.case, status="closed", actor=None)
    with time_machine.travel(T0 + timedelta(days=2), tick=False):
        context = ingest.IngestContext(batch=True)
        context.prefetch([(channel, dm("d1", at=timezone.now()))])
        later = ingest.ingest(channel=channel, inbound=dm("d1", at=timezone.now()), context=context)
    assert later.case != first.case


def test_open_case_takes_follow_ups_however_old(channel):
    with time_machine.travel(T0, tick=False):
        first = ingest.ingest(channel=channel, inbound=tweet("t1", at=timezone.now()))
    with time_machine.travel(T0 + timedelta(days=45), tick=False):
        later = ingest.ingest(channel=channel, inbound=dm("d1", at=timezone.now()))
    assert later.case == first.case


def test_replayed_message_uses_the_time_it_was_written(channel):
    with time_machine.travel(T0, tick=False):
        first = ingest.ingest(channel=channel, inbound=tweet("t1", at=timezone.now()))
        services.case_set_status(case=first.case, status="resolved", actor=None)
    # Written two days after the case was resolved, processed a month later.
    with time_machine.travel(T0 + timedelta(days=30), tick=False):
        replayed = ingest.ingest(channel=channel, inbound=dm("d1", at=T0 + timedelta(days=2)))
    assert replayed.case == first.case


def test_most_recent_open_case_wins(channel, customer):
    factories.IdentityFactory(customer=customer, kind="x", platform_id="5150")
    older = ingest.ingest(channel=channel, inbound=tweet("t1", at=T0))
    newer_case = services.case_open(customer=customer, channel=channel)
    services.message_add(
        case=newer_case, direction="in", kind="post", channel=channel, sent_at=T0 + timedelta(hours=1)
    )

    message = ingest.ingest(channel=channel, inbound=dm("d1", at=T0 + timedelta(hours=2)))

    assert message.case == newer_case != older.case


# --- identities ------------------------------------------------------------------------------


def test_known_identity_is_refreshed_and_never_gets_a_second_customer(channel):
    ingest.ingest(
        channel=channel,
        inbound=tweet("t1", author_name="Rosa", author_follower_count=10, author_profile={"location": "NYC"}),
    )
    ingest.ingest(
        channel=channel,
        inbound=dm(
            "d1",
            author_handle="rosa_new",
            author_name="",
            author_follower_count=25,
            author_verified=True,
            author_profile={"description": "hi"},
        ),
    )

    identity = Identity.objects.get()
    assert (identity.handle, identity.display_name) == ("rosa_new", "Rosa")
    assert identity.follower_count == 25 and identity.verified is True
    assert identity.profile == {"location": "NYC", "description": "hi"}
    assert Customer.objects.count() == 1 and Customer.objects.get().name == "Rosa"


def test_email_addresses_resolve_case_insensitively(mailboxes):
    a = ingest.ingest(channel=mailboxes[0], inbound=mail("<1@x>", author="Rosa@Example.TEST"))
    b = ingest.ingest(channel=mailboxes[0], inbound=mail("<2@x>", author="rosa@example.test"))
    assert a.identity == b.identity and Identity.objects.get().platform_id == "rosa@example.test"


def test_identity_link_moves_one_identity_and_records_how(customer, agent):
    other = factories.CustomerFactory()
    identity = factories.IdentityFactory(customer=other, kind="email", platform_id="r@example.test")

    linked = customer_services.identity_link(
        identity=identity, customer=customer, actor=agent, source="agent"
    )

    assert linked.customer == customer and linked.link_source == "agent" and linked.linked_by == agent
    with pytest.raises(CustomerRefused) as error:
        customer_services.identity_link(identity=identity, customer=customer, actor=agent, source="hunch")
    assert error.value.field == "source"


def test_customer_merge_moves_identities_and_cases_with_an_event_each(channel, agent):
    a = ingest.ingest(channel=channel, inbound=tweet("t1", author="1"))
    b = ingest.ingest(channel=channel, inbound=tweet("t2", author="2"))
    source, target = b.identity.customer, a.identity.customer

    services.customer_merge(source=source, target=target, actor=agent)

    source.refresh_from_db()
    assert source.merged_into == target
    assert set(Identity.objects.values_list("customer", flat=True)) == {target.pk}
    assert set(Case.objects.values_list("customer", flat=True)) == {target.pk}
    event = CaseEvent.objects.get(kind="merged")
    assert event.case == b.case and event.actor == agent
    assert event.before == {"customer": source.pk} and event.after["identities"] == [b.identity.pk]
    # A later message from the moved identity lands on the target's cases, not a new customer.
    later = ingest.ingest(channel=channel, inbound=dm("d1", author="2", at=T0 + timedelta(hours=1)))
    assert later.case.customer == target and Customer.objects.filter(merged_into__isnull=True).count() == 1

    with pytest.raises(ServiceError):
        services.customer_merge(source=source, target=target, actor=agent)
    with pytest.raises(ServiceError):
        services.customer_merge(source=target, target=target, actor=agent)


# --- echoes, attachments, delivery -----------------------------------------------------------


def test_echo_to_a_known_customer_without_a_case_is_not_stored(channel, identity):
    echo = tweet("e1", author="777", is_echo=True, recipient_id=identity.platform_id)
    assert ingest.ingest(channel=channel, inbound=echo) is None
    assert Message.objects.count() == 0


def test_attachments_are_saved_as_files_or_links(channel, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    message = ingest.ingest(
        channel=channel,
        inbound=dm(
            "d1",
            attachments=(
                InboundAttachment(
                    filename="bill.pdf", content_type="application/pdf", content=b"%PDF-1.4 bill"
                ),
                InboundAttachment(
                    filename="photo.jpg", content_type="image/jpeg", url="https://ton.x.com/p.jpg"
                ),
            ),
        ),
    )

    stored, linked = message.attachments.order_by("id")
    assert stored.size == 13 and stored.file.read() == b"%PDF-1.4 bill" and stored.filename == "bill.pdf"
    assert linked.external_url == "https://ton.x.com/p.jpg" and not linked.file


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"external_id": ""}, "external_id"),
        ({"author_id": ""}, "author_id"),
        ({"kind": "note"}, "kind"),
        ({"sent_at": datetime(2026, 1, 1)}, "sent_at"),
    ],
)
def test_unstorable_values_are_refused_naming_the_field(channel, change, field):
    with pytest.raises(ServiceError) as error:
        ingest.ingest(channel=channel, inbound=replace(tweet("t1"), **change))
    assert error.value.field == field
    assert Message.objects.count() == 0 and Customer.objects.count() == 0


def test_delivery_updates_move_forward_and_failures_are_recorded(case, channel, agent):
    ours = services.message_add(
        case=case,
        direction="out",
        kind="dm",
        text="Hi",
        channel=channel,
        author=agent,
        external_id="o1",
        delivery_state="queued",
    )

    ingest.delivery_update_apply(channel=channel, update=DeliveryUpdate(external_id="o1", state="read"))
    ingest.delivery_update_apply(channel=channel, update=DeliveryUpdate(external_id="o1", state="delivered"))
    ours.refresh_from_db()
    assert ours.delivery_state == "read"
    assert not CaseEvent.objects.filter(kind="delivery").exists()

    ingest.delivery_update_apply(
        channel=channel,
        update=DeliveryUpdate(external_id="o1", state="failed", error="131047: re-engagement"),
    )
    ours.refresh_from_db()
    assert ours.delivery_state == "failed" and ours.delivery_error == "131047: re-engagement"
    event = CaseEvent.objects.get(kind="delivery")
    assert event.message == ours and event.reason == "131047: re-engagement"
    assert event.before == {"delivery_state": "read"} and event.after == {"delivery_state": "failed"}

    assert (
        ingest.delivery_update_apply(channel=channel, update=DeliveryUpdate(external_id="nope", state="sent"))
        is None
    )


def test_follow_up_costs_eleven_queries(channel, django_assert_num_queries):
    ingest.ingest(channel=channel, inbound=tweet("t1"))
    # stored already? (1), savepoint (2), identity (1), early replies (1), recent case locked
    # (1), triage settings (1), repeat contacts (1), case, message and its event (3).
    with django_assert_num_queries(11):
        ingest.ingest(channel=channel, inbound=dm("d1", at=T0 + timedelta(minutes=5)))


def test_first_message_of_a_new_customer_costs_thirteen_queries(channel, django_assert_num_queries):
    # stored already? (1), savepoints (4), identity looked up twice (2), early replies (1),
    # customer and identity (1), triage settings (1), case with its message (1), events (1),
    # escalation paths (1). The webhook subscribers are cached, as they are in a running worker.
    webhooks_out.active_subscriptions()
    with django_assert_num_queries(13):
        ingest.ingest(channel=channel, inbound=tweet("t1"))


def test_a_reply_costs_the_same_queries_and_leaves_its_parents_content_unread(
    mailboxes, django_assert_num_queries
):
    support, _ = mailboxes
    html = "<p>" + "Long thread. " * 20_000 + "</p>"
    parent = ingest.ingest(channel=support, inbound=mail("m1@example.test", html=html, text="Long thread."))
    webhooks_out.active_subscriptions()
    reply = mail("m2@example.test", at=T0 + timedelta(minutes=5), reply_to_external_id="m1@example.test")
    # stored already? (1), savepoints (2), identity (1), parent with its case locked (1), the
    # case's channel and its promise for the clocks (2), triage settings (1), repeat contacts
    # (1), case, message, event (3), early replies (1).
    with django_assert_num_queries(13) as queries:
        stored = ingest.ingest(channel=support, inbound=reply)
    assert stored.reply_to_id == parent.pk and stored.case_id == parent.case_id
    looked_up = [q["sql"] for q in queries.captured_queries if "FOR UPDATE" in q["sql"]]
    assert len(looked_up) == 1 and "html" not in looked_up[0] and "Long thread" not in looked_up[0]

    found = ingest._parent(support, "m1@example.test", global_ids=True)
    assert {"html", "text", "triage"} <= found.get_deferred_fields()
    assert found.case.pk == parent.case_id and found.case.customer.pk == parent.case.customer_id


# --- a reply that arrives before its parent --------------------------------------------------


def whatsapp(external_id: str, *, author: str = "16505551234", at: datetime = T0, **extra) -> InboundMessage:
    values = {
        "platform": "whatsapp",
        "external_id": external_id,
        "author_id": author,
        "kind": "dm",
        "sent_at": at,
        "text": f"message {external_id}",
    }
    if extra.get("reply_to_external_id"):
        values["thread_keys"] = (extra["reply_to_external_id"],)
    return InboundMessage(**(values | extra))


@pytest.fixture
def wa_channel(department):
    return factories.ChannelFactory(
        kind="whatsapp", slug="brand-wa", department=department, account_id="1065"
    )


@pytest.mark.parametrize("platform", ["x", "whatsapp", "email"])
def test_parent_arriving_after_its_reply_joins_the_reply_s_case(channel, wa_channel, mailboxes, platform):
    ch, make, parent_id, reply_id = {
        "x": (channel, tweet, "t1", "t2"),
        "whatsapp": (wa_channel, whatsapp, "wamid.A1", "wamid.A2"),
        "email": (mailboxes[0], mail, "<p1@home.example>", "<p2@home.example>"),
    }[platform]
    reply = ingest.ingest(
        channel=ch, inbound=make(reply_id, at=T0 + timedelta(minutes=2), reply_to_external_id=parent_id)
    )
    assert reply.reply_to is None and reply.in_reply_to_external_id == parent_id

    parent = ingest.ingest(channel=ch, inbound=make(parent_id, at=T0))

    reply.refresh_from_db()
    assert parent.case == reply.case and reply.reply_to == parent
    assert Case.objects.count() == 1 and Customer.objects.count() == 1
    assert list(parent.case.messages.values_list("external_id", flat=True)) == [parent_id, reply_id]
    assert not CaseEvent.objects.filter(kind="merged").exists()


def test_early_email_reply_from_another_mailbox_is_adopted_by_message_id(mailboxes):
    support, billing = mailboxes
    reply = ingest.ingest(
        channel=billing,
        inbound=mail("<b2@x>", author="colleague@example.test", reply_to_external_id="<b1@x>"),
    )

    parent = ingest.ingest(channel=support, inbound=mail("<b1@x>", at=T0 - timedelta(minutes=5)))

    reply.refresh_from_db()
    assert reply.reply_to == parent


def test_early_reply_on_another_case_is_moved_to_the_parent_s_case_with_events(channel, settings):
    settings.CASE_REOPEN_WINDOW_DAYS = 7
    with time_machine.travel(T0, tick=False):
        old = ingest.ingest(channel=channel, inbound=tweet("t0", at=T0))
        services.case_set_status(case=old.case, status="closed", actor=None)
    later = T0 + timedelta(days=30)
    with time_machine.travel(later, tick=False):
        # The customer answers their own new tweet t1 (itself a reply to t0); t2 arrives first.
        early = ingest.ingest(
            channel=channel, inbound=tweet("t2", at=later + timedelta(minutes=1), reply_to_external_id="t1")
        )
        assert early.case != old.case
        stray_case = early.case

        parent = ingest.ingest(channel=channel, inbound=tweet("t1", at=later, reply_to_external_id="t0"))

    early.refresh_from_db()
    stray_case.refresh_from_db()
    assert parent.case == old.case == early.case and early.reply_to == parent
    assert stray_case.status == Case.Status.CLOSED and not stray_case.messages.exists()
    merged = CaseEvent.objects.filter(kind="merged").order_by("id")
    assert [e.case_id for e in merged] == [stray_case.pk, old.case_id]
    assert all(e.before == {"case": stray_case.pk, "messages": [early.pk]} for e in merged)
    assert all(e.after == {"case": old.case_id} and e.message == parent for e in merged)
    old.case.refresh_from_db()
    assert old.case.status == Case.Status.OPEN and old.case.last_inbound_at == early.sent_at
    closing = CaseEvent.objects.get(case=stray_case, kind="status")
    assert closing.after == {"status": "closed"} and old.case.reference in closing.reason


def test_reply_and_parent_in_one_batch_in_reverse_order_are_one_case(channel):
    context = ingest.IngestContext(batch=True)
    items = [tweet("t2", at=T0 + timedelta(minutes=1), reply_to_external_id="t1"), tweet("t1")]
    context.prefetch([(channel, m) for m in items])

    reply, parent = (ingest.ingest(channel=channel, inbound=m, context=context) for m in items)

    reply.refresh_from_db()
    assert reply.case == parent.case and reply.reply_to == parent and Case.objects.count() == 1
