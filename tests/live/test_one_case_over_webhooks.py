"""The conversation Caseline exists for, end to end: one customer moves from a public tweet to a
DM, to e-mail and to the phone, and it stays one case, with one timeline, one owner, the
service promises kept as the clock rules say, and every step on the agent's open socket.

Everything reaches the app as it would in production: signed webhooks (X Account Activity with
``x-twitter-webhooks-signature``, raw MIME on the e-mail webhook's plain door with the ESP's
basic auth, Twilio's status callback with ``X-Twilio-Signature``) posted to a daphne process
serving ``config.asgi:application`` on the test database and Redis; a real Celery worker takes
the inbox batches and the outbound send from Redis; the agent works through the desk pages
(session cookie, CSRF token, htmx) on the same server, with the desk socket
(``/ws/desk/``) open from before the first webhook to the end. The public reply goes to a fake
X API on 127.0.0.1.

The story:

1. Dana tweets at the brand about an order (X, public).
2. The agent claims the case and asks her publicly to move to a DM, quoting the case
   reference (``case_move_to_private``); the worker posts the reply to X.
3. Dana sends a DM quoting the reference.
4. Dana e-mails the support address with the reference in the subject, and writes her phone
   number in the body. The number is nobody's on file, so the e-mail raises a suggestion of a
   new contact detail (``customers.services.identity_suggestions_record``); the case page's
   customer panel asks "Add (415) 555-0123 as this customer's phone?", the agent adds it there,
   and the accept is pushed to the open socket (the panel again, with the phone).
5. Dana calls from that number (Twilio): the identity the agent added brings the call to her
   open case. The call was picked up, so it answers her e-mail: no response is owed after it.
6. The agent resolves the case.
7. Dana sends a follow-up e-mail that carries only ``References`` (no reference in the
   subject, no ``In-Reply-To``). The e-mail channel reopens no ended case by itself
   (``reopen_window_days=0``), so only the ``References`` thread can bring it to the case.

Each step is waited for by polling the database with a deadline; the platforms' times are
whole seconds where theirs are, so a step waits for the next whole second when it must come
after the one before.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.test import Client

from cases.models import Case, CaseEvent, Membership, Message
from connectors.models import Channel, InboundEvent
from customers.models import Customer, Identity, IdentitySuggestion
from tests import factories
from tests.faults import servers, traffic
from tests.faults.fake_x import FakeX
from tests.live import outside

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.IS_POSTGRES or "redis" not in settings.CHANNEL_LAYERS["default"]["BACKEND"].lower(),
        reason="the app's processes share PostgreSQL and Redis: set DATABASE_URL and REDIS_URL",
    ),
]

MINUTE = timedelta(minutes=1)
# The promises configured per channel (minutes; 24/7, at risk at 75 %).
PROMISES = {
    "x": {"first": 60, "next": 30, "resolution": 24 * 60},
    "email": {"first": 240, "next": 480, "resolution": 3 * 24 * 60},
    "phone": {"first": 15, "next": 120, "resolution": 12 * 60},
}
AT_RISK = 0.75
SLACK = timedelta(milliseconds=1)

DANA_X_ID = "4400123"
DANA_HANDLE = "dana_k"
DANA_NAME = "Dana K"
DANA_MAIL = "dana.k@mail.example.org"
DANA_PHONE = "+14155550123"
DANA_PHONE_AS_WRITTEN = "(415) 555-0123"
TWEET_ID = "1830000000000000001"
DM_ID = "1830000000000000777"
FIRST_MAIL_ID = "cafe01.order48213@mail.example.org"
FOLLOW_UP_ID = "cafe02.order48213@mail.example.org"
CALL_SID = "CA" + "e2e0" * 8


@dataclass(frozen=True)
class Between:
    """A moment known to lie between two others (a server-side "now" bracketed by a request)."""

    lo: datetime
    hi: datetime

    def __add__(self, delta: timedelta) -> Between:
        return Between(self.lo + delta, self.hi + delta)

    def __sub__(self, delta: timedelta) -> Between:
        return Between(self.lo - delta, self.hi - delta)

    def holds(self, value) -> bool:
        # A clock's float minutes may land a microsecond off the exact second.
        slack = SLACK if isinstance(self.lo, datetime) else 0
        return value is not None and self.lo - slack <= value <= self.hi + slack


def seconds_left(due: Between, paused_at: Between) -> tuple[int, int]:
    """The whole seconds of a 24/7 clock left when it is paused (stored as whole seconds, so
    the low end allows a second for a truncation that the float minutes tipped)."""
    return int((due.lo - paused_at.hi).total_seconds()) - 1, int((due.hi - paused_at.lo).total_seconds())


def now() -> datetime:
    return datetime.now(UTC)


# --- the world ----------------------------------------------------------------------------------


@pytest.fixture
def world():
    care = factories.DepartmentFactory(name="Customer Care", slug="care")
    agent = factories.UserFactory(username="e2e-agent", first_name="Alex", last_name="Agent")
    factories.MembershipFactory(user=agent, department=care, role=Membership.Role.AGENT)
    channels = {}
    for kind, (slug, account, roles) in traffic.CHANNELS.items():
        if kind not in PROMISES:
            continue
        channels[kind] = factories.ChannelFactory(
            kind=kind,
            name=f"Brand {kind}",
            slug=slug,
            department=care,
            account_id=account,
            secret_env=dict(roles),
            reopen_window_days=0 if kind == "email" else None,
        )
        promise = PROMISES[kind]
        factories.ServicePromiseFactory(
            channel=channels[kind],
            first_response_minutes=promise["first"],
            next_response_minutes=promise["next"],
            resolution_minutes=promise["resolution"],
            at_risk_ratio=Decimal(str(AT_RISK)),
        )
    # Dana's number is on file nowhere: the e-mail that gives it is the first Caseline hears of it.
    return {"care": care, "agent": agent, "channels": channels}


@pytest.fixture
def fake_x(world):
    with FakeX() as api:
        Channel.objects.filter(pk=world["channels"]["x"].pk).update(api_base_url=api.url)
        yield api


@pytest.fixture
def app(world, fake_x):
    started = outside.start_app()
    yield started
    started.stop()
    print(started.report())  # shown when the test failed


# --- waiting for the app --------------------------------------------------------------------------


def stored(channel, external_id: str, *, timeout: float = 20.0) -> Message:
    """The message the worker stored for a delivery; fails at once if an event failed."""

    def look():
        failed = InboundEvent.objects.filter(status=InboundEvent.Status.FAILED).values_list(
            "error", flat=True
        )
        assert not failed, f"an inbound event failed: {list(failed)}"
        return Message.objects.select_related("case").filter(channel=channel, external_id=external_id).first()

    return servers.wait_for(look, timeout=timeout, what=f"{channel.kind} message {external_id} to be stored")


def newest_event(case: Case) -> int:
    return CaseEvent.objects.filter(case=case).order_by("-id").values_list("id", flat=True).first()


def pushed_row(pushes: outside.Pushes, case: Case, *, seq: int, what: str) -> dict:
    """The queue row of ``case`` pushed with a number at least ``seq`` (it reflects that event)."""
    return pushes.until(
        lambda f: f.get("type") == "queue.row" and f.get("id") == case.pk and (f.get("seq") or 0) >= seq,
        what=what,
    )


def pushed_entry(pushes: outside.Pushes, message: Message, *, what: str, contains: str = "") -> dict:
    """The timeline entry of ``message`` pushed to the case page."""
    return pushes.until(
        lambda f: f.get("type") == "timeline.entry" and f.get("id") == message.pk and contains in f["html"],
        what=what,
    )


def pushed_header(pushes: outside.Pushes, *, seq: int, what: str) -> dict:
    return pushes.until(
        lambda f: f.get("type") == "swap" and f.get("target") == "case-header" and (f.get("seq") or 0) >= seq,
        what=what,
    )


def check_clocks(case: Case, step: str, **expected) -> None:
    """Each named field of the case, read again, equals its expected value (None for a clock
    that is not running), or lies in its ``Between``."""
    case.refresh_from_db()
    for name, want in expected.items():
        got = getattr(case, name)
        if isinstance(want, Between):
            assert want.holds(got), f"{step}: {name} is {got}, expected between {want.lo} and {want.hi}"
        else:
            assert got == want, f"{step}: {name} is {got}, expected {want}"


# --- the test -------------------------------------------------------------------------------------


def test_one_customer_across_x_dm_email_and_phone_is_one_case_on_one_open_socket(world, fake_x, app):
    started = time.monotonic()
    agent, channels = world["agent"], world["channels"]
    x, mail, phone = channels["x"], channels["email"], channels["phone"]
    browser = Client()
    browser.force_login(agent)
    session = browser.cookies[settings.SESSION_COOKIE_NAME].value
    desk = outside.Desk(app, session)
    desk.page("/desk/")  # the queue page: it hands out the CSRF token

    # The agent's queue page holds its socket from before the first webhook to the end.
    pushes = outside.Pushes(app, session)
    steps: dict[str, list[dict]] = {}
    try:
        assert pushes.until(lambda f: f.get("type") == "hello", what="hello")["role"] == "agent"
        pushes.send({"action": "queue", "view": "department", "seq": 0, "replay": True, "rows": []})
        pushes.send({"action": "ping"})
        pushes.until(lambda f: f.get("type") == "pong", what="pong (queue followed)")

        # 1. A public tweet.
        t1 = now().replace(microsecond=0)
        outside.deliver(
            app,
            outside.tweet(
                tweet_id=TWEET_ID,
                author=DANA_X_ID,
                handle=DANA_HANDLE,
                name=DANA_NAME,
                text="@brand my order 48213 still hasn't arrived and nobody answers. Can you help?",
                at=t1,
            ),
        )
        post = stored(x, TWEET_ID)
        case = post.case
        steps["tweet"] = [pushed_row(pushes, case, seq=newest_event(case), what="the new case's row")]
        check_clocks(
            case,
            "after the tweet",
            status=Case.Status.NEW,
            first_response_due_at=t1 + PROMISES["x"]["first"] * MINUTE,
            response_risk_at=t1 + PROMISES["x"]["first"] * AT_RISK * MINUTE,
            next_response_due_at=None,
            resolution_due_at=t1 + PROMISES["x"]["resolution"] * MINUTE,
            due_at=t1 + PROMISES["x"]["first"] * MINUTE,
            at_risk_at=t1 + PROMISES["x"]["first"] * AT_RISK * MINUTE,
            sla_state=Case.SlaState.OK,
        )

        # The page now also follows the case, as its case page does.
        pushes.send({"action": "watch", "case": case.reference, "since": now().isoformat()})
        pushes.send({"action": "ping"})
        pushes.until(lambda f: f.get("type") == "pong", what="pong (case watched)")
        case_page = desk.page(f"/desk/cases/{case.reference}/")
        assert f"/desk/cases/{case.reference}/claim/" in case_page

        # 2. The agent claims the case and asks, in public, to move to a DM.
        desk.post(f"/desk/cases/{case.reference}/claim/")
        claimed = newest_event(case)
        steps["claim"] = [
            pushed_row(pushes, case, seq=claimed, what="the claimed row"),
            pushed_header(pushes, seq=claimed, what="the claimed case's header"),
        ]
        before_move = now()
        desk.post(
            f"/desk/cases/{case.reference}/move-to-private/",
            {"channel": str(x.pk), "private_channel_kind": "dm"},
        )
        after_move = now()
        move_at = Between(before_move, after_move)
        reply = Message.objects.get(case=case, direction=Message.Direction.OUT)
        assert case.reference in reply.text and "recipient_id=" + outside.X_ACCOUNT in reply.text
        servers.wait_for(
            lambda: Message.objects.get(pk=reply.pk).delivery_state == Message.Delivery.SENT,
            timeout=20,
            what="the worker to post the reply to X",
        )
        assert len(fake_x.posted) == 1
        assert fake_x.requests[0]["path"] == "/2/tweets"
        assert fake_x.requests[0]["json"] == {"text": reply.text, "reply": {"in_reply_to_tweet_id": TWEET_ID}}
        steps["move to private"] = [
            pushed_entry(pushes, reply, what="the public reply"),
            pushed_entry(pushes, reply, what="the reply, sent", contains="dl-sent"),
            pushed_row(pushes, case, seq=newest_event(case), what="the row waiting on the customer"),
        ]
        x_resolution_due = Between(t1, t1) + PROMISES["x"]["resolution"] * MINUTE
        left_lo, left_hi = seconds_left(x_resolution_due, move_at)
        check_clocks(
            case,
            "after the move to private",
            status=Case.Status.WAITING_ON_CUSTOMER,
            first_responded_at=move_at,
            first_response_due_at=None,
            next_response_due_at=None,
            response_risk_at=None,
            resolution_due_at=None,
            resolution_remaining_seconds=Between(left_lo, left_hi),
            due_at=None,
            sla_state=Case.SlaState.PAUSED,
        )

        # 3. The customer's DM, quoting the reference.
        t3 = now()
        t3 = t3.replace(microsecond=t3.microsecond // 1000 * 1000)  # X gives milliseconds
        outside.deliver(
            app,
            outside.direct_message(
                dm_id=DM_ID,
                author=DANA_X_ID,
                handle=DANA_HANDLE,
                name=DANA_NAME,
                text=f"Hi, as asked: {case.reference}. Order 48213, paid on the 2nd, still not here.",
                at=t3,
            ),
        )
        dm = stored(x, DM_ID)
        assert dm.case_id == case.pk
        steps["DM"] = [
            pushed_entry(pushes, dm, what="the DM"),
            pushed_row(pushes, case, seq=newest_event(case), what="the row after the DM"),
        ]
        resolution_due = Between(t3 + timedelta(seconds=left_lo), t3 + timedelta(seconds=left_hi))
        resolution_lead = PROMISES["x"]["resolution"] * (1 - AT_RISK) * MINUTE
        check_clocks(
            case,
            "after the DM",
            status=Case.Status.OPEN,
            first_responded_at=move_at,
            next_response_due_at=t3 + PROMISES["x"]["next"] * MINUTE,
            response_risk_at=t3 + PROMISES["x"]["next"] * AT_RISK * MINUTE,
            resolution_due_at=resolution_due,
            resolution_risk_at=resolution_due - resolution_lead,
            resolution_remaining_seconds=None,
            due_at=t3 + PROMISES["x"]["next"] * MINUTE,
            sla_state=Case.SlaState.OK,
        )

        # 4. An e-mail to the support address, the reference in its subject, her number in its body.
        t4 = outside.whole_second_after(t3)
        outside.deliver(
            app,
            outside.email(
                message_id=FIRST_MAIL_ID,
                sender=DANA_MAIL,
                name=DANA_NAME,
                subject=f"Order 48213 still missing [#{case.reference}]",
                text=(
                    "Hello,\n\nI wrote to you on X about order 48213; it has still not arrived.\n"
                    f"You can call me on {DANA_PHONE_AS_WRITTEN} any time today.\n\nDana"
                ),
                at=t4,
            ),
        )
        first_mail = stored(mail, FIRST_MAIL_ID)
        assert first_mail.case_id == case.pk
        steps["e-mail"] = [
            pushed_entry(pushes, first_mail, what="the e-mail"),
            pushed_row(pushes, case, seq=newest_event(case), what="the row after the e-mail"),
        ]
        # Counted from the DM, the oldest unanswered message, on the e-mail promise now.
        check_clocks(
            case,
            "after the e-mail",
            next_response_due_at=t3 + PROMISES["email"]["next"] * MINUTE,
            response_risk_at=t3 + PROMISES["email"]["next"] * AT_RISK * MINUTE,
            resolution_due_at=resolution_due,
            due_at=t3 + PROMISES["email"]["next"] * MINUTE,
            at_risk_at=t3 + PROMISES["email"]["next"] * AT_RISK * MINUTE,
        )

        # The number is nobody's: the case page's customer panel asks to add it, and the agent does.
        assert not Identity.objects.filter(platform_id=DANA_PHONE).exists()
        suggestion = IdentitySuggestion.objects.get(customer_id=case.customer_id)
        assert (suggestion.kind, suggestion.platform_id, suggestion.identity_id) == (
            "phone",
            DANA_PHONE,
            None,
        )
        assert suggestion.value == DANA_PHONE_AS_WRITTEN and suggestion.source_message_id == first_mail.pk
        case_page = desk.page(f"/desk/cases/{case.reference}/")
        question = f'Add <strong class="mono">{DANA_PHONE_AS_WRITTEN}</strong> as this customer\'s phone?'
        assert question in case_page
        accept_urls = set(re.findall(rf"/desk/cases/{case.reference}/suggestions/\d+/accept/", case_page))
        assert accept_urls == {f"/desk/cases/{case.reference}/suggestions/{suggestion.pk}/accept/"}
        answer = desk.post(accept_urls.pop())
        accepted_at = now()
        assert (
            f"{DANA_PHONE_AS_WRITTEN} is now Dana K&#x27;s phone (suggested, confirmed by you)."
            in answer.text
        )
        suggestion.refresh_from_db()
        assert suggestion.status == IdentitySuggestion.Status.ACCEPTED
        assert suggestion.decided_by_id == agent.pk
        # The accept is pushed to the socket watching the case: its customer panel, with the phone.
        steps["accept"] = [
            pushes.until(
                lambda f: (
                    f.get("type") == "swap"
                    and f.get("target") == "customer-panel"
                    and DANA_PHONE in f["html"]
                    and "as this customer" not in f["html"]
                ),
                what="the customer panel with the accepted phone",
            )
        ]

        # 5. She calls from that number; the call started after the agent accepted it.
        seconds = 2
        t5 = outside.whole_second_after(accepted_at)
        servers.wait_for(lambda: now() >= t5 + timedelta(seconds=seconds), timeout=5, what="the call to end")
        outside.deliver(
            app,
            outside.call(
                call_sid=CALL_SID, caller=DANA_PHONE, caller_name="DANA K", started=t5, seconds=seconds
            ),
        )
        phone_call = stored(phone, CALL_SID)
        assert phone_call.case_id == case.pk, "the call from the accepted number is on the case"
        steps["call"] = [
            pushed_entry(pushes, phone_call, what="the call"),
            pushed_row(pushes, case, seq=newest_event(case), what="the row after the call"),
        ]
        # someone picked up (it lasted): she was answered on the phone, nothing more is owed
        check_clocks(
            case,
            "after the call",
            next_response_due_at=None,
            response_risk_at=None,
            resolution_due_at=resolution_due,
            due_at=resolution_due,
        )

        # 6. The agent resolves the case.
        before_resolve = now()
        desk.post(f"/desk/cases/{case.reference}/status/", {"status": Case.Status.RESOLVED, "reason": ""})
        resolved_at = Between(before_resolve, now())
        resolved = newest_event(case)
        steps["resolve"] = [
            pushes.until(
                lambda f: f.get("type") == "queue.remove" and f.get("id") == case.pk and f["seq"] >= resolved,
                what="the resolved case leaving the queue",
            ),
            pushed_header(pushes, seq=resolved, what="the resolved case's header"),
        ]
        left_lo, left_hi = seconds_left(resolution_due, resolved_at)
        check_clocks(
            case,
            "after resolving",
            status=Case.Status.RESOLVED,
            next_response_due_at=None,
            response_risk_at=None,
            resolution_due_at=None,
            resolution_remaining_seconds=Between(left_lo, left_hi),
            due_at=None,
            sla_state=Case.SlaState.NONE,
        )

        # 7. A follow-up e-mail that carries only References.
        t6 = outside.whole_second_after(resolved_at.hi)
        outside.deliver(
            app,
            outside.email(
                message_id=FOLLOW_UP_ID,
                sender=DANA_MAIL,
                name=DANA_NAME,
                subject="One more thing",
                text="Sorry, I forgot: the parcel should go to the back door. Thanks for the call!\n\nDana",
                at=t6,
                headers=(f"References: <{FIRST_MAIL_ID}>",),
            ),
        )
        follow_up = stored(mail, FOLLOW_UP_ID)
        assert follow_up.case_id == case.pk, "the References thread brings the follow-up to the case"
        steps["follow-up"] = [
            pushed_entry(pushes, follow_up, what="the follow-up"),
            pushed_row(pushes, case, seq=newest_event(case), what="the reopened row"),
        ]

        # The socket is still the one opened before the first webhook.
        pushes.send({"action": "ping"})
        pushes.until(lambda f: f.get("type") == "pong", what="pong at the end")
        assert not pushes.closed
        case_page = desk.page(f"/desk/cases/{case.reference}/")
    finally:
        pushes.close()
        desk.close()

    # One case, one customer.
    assert Case.objects.count() == 1
    case.refresh_from_db()
    assert not InboundEvent.objects.exclude(status=InboundEvent.Status.PROCESSED).exists()
    assert Customer.objects.count() == 1
    identities = {i.kind: i for i in Identity.objects.filter(customer_id=case.customer_id)}
    assert set(identities) == {"x", "email", "phone"}
    assert identities["email"].link_source == Identity.LinkSource.VERIFIED
    assert identities["phone"].link_source == Identity.LinkSource.SUGGESTED
    assert identities["phone"].linked_by_id == agent.pk
    assert identities["phone"].platform_id == DANA_PHONE
    assert Identity.objects.count() == 3

    # One timeline in time order, each step on its channel.
    timeline = list(Message.objects.filter(case=case).select_related("channel").order_by("sent_at", "id"))
    assert [(m.pk, m.direction, m.kind, m.channel.kind, m.is_public) for m in timeline] == [
        (post.pk, "in", "post", "x", True),
        (reply.pk, "out", "post", "x", True),
        (dm.pk, "in", "dm", "x", False),
        (first_mail.pk, "in", "email", "email", False),
        (phone_call.pk, "in", "call", "phone", False),
        (follow_up.pk, "in", "email", "email", False),
    ]
    times = [m.sent_at for m in timeline]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert [m.sent_at for m in (post, dm, first_mail, phone_call, follow_up)] == [t1, t3, t4, t5, t6]
    assert all(m.identity.customer_id == case.customer_id for m in timeline)
    # The case page shows them in that order.
    shown = [int(pk) for pk in re.findall(r'<li class="card entry[^"]*" id="message-(\d+)"', case_page)]
    assert shown == [m.pk for m in timeline]
    events = list(CaseEvent.objects.filter(case=case).order_by("id"))
    assert [e.created_at for e in events] == sorted(e.created_at for e in events)
    story = [
        (e.kind, e.message_id, e.after.get("status", ""))
        for e in events
        if e.kind not in (CaseEvent.Kind.PRIORITY, CaseEvent.Kind.CATEGORY)
    ]
    assert story == [
        ("created", None, ""),
        ("message_in", post.pk, ""),
        ("claimed", None, ""),
        ("message_out", reply.pk, "open"),
        ("status", None, "waiting_on_customer"),
        ("message_in", dm.pk, "open"),
        ("message_in", first_mail.pk, ""),
        ("call", phone_call.pk, ""),
        ("status", None, "resolved"),
        ("message_in", follow_up.pk, "open"),
    ]

    # One owner throughout.
    assert case.assignee_id == agent.pk
    assert [e.kind for e in events if e.after.get("assignee") is not None or e.kind == "unassigned"] == [
        "claimed"
    ]
    assert case.department_id == world["care"].pk

    # The promise clocks as the rules say: first response met by the public reply; the follow-up
    # on e-mail starts a next response from itself on the e-mail promise; resolution resumes with
    # what was left when the case was resolved.
    resolution_due = Between(t6 + timedelta(seconds=left_lo), t6 + timedelta(seconds=left_hi))
    check_clocks(
        case,
        "at the end",
        status=Case.Status.OPEN,
        first_responded_at=move_at,
        first_response_due_at=None,
        next_response_due_at=t6 + PROMISES["email"]["next"] * MINUTE,
        response_risk_at=t6 + PROMISES["email"]["next"] * AT_RISK * MINUTE,
        resolution_due_at=resolution_due,
        resolution_risk_at=resolution_due - resolution_lead,
        resolution_remaining_seconds=None,
        due_at=t6 + PROMISES["email"]["next"] * MINUTE,
        at_risk_at=t6 + PROMISES["email"]["next"] * AT_RISK * MINUTE,
        sla_state=Case.SlaState.OK,
        last_channel_id=mail.pk,
        origin_channel_id=x.pk,
    )

    # Every step reached the socket, each push numbered past the step's own events.
    assert list(steps) == [
        "tweet",
        "claim",
        "move to private",
        "DM",
        "e-mail",
        "accept",
        "call",
        "resolve",
        "follow-up",
    ]
    assert all(pushed for pushed in steps.values())
    assert time.monotonic() - started < 60
