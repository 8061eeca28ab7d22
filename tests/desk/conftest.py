"""Builders for desk page tests: cases made through the services, as ingest would make them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cases import services
from cases.models import Attachment, Membership
from tests import factories

PASSWORD = "pw-for-tests-1"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """Desk tests make many users; a slow password hash would be most of their time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def channels(department, channel):
    """One company channel per platform, all routed to ``department`` with a 60-minute promise."""
    made = {"x": channel}
    for kind, name in [
        ("facebook", "Brand page"),
        ("instagram", "Brand on Instagram"),
        ("whatsapp", "Brand WhatsApp"),
        ("email", "Support mailbox"),
        ("phone", "Support line"),
    ]:
        made[kind] = factories.ChannelFactory(
            kind=kind, name=name, slug=f"brand-{kind}", department=department
        )
        factories.ServicePromiseFactory(
            channel=made[kind], first_response_minutes=60, next_response_minutes=60
        )
    return made


@pytest.fixture
def outsider(other_department):
    """An agent of another department."""
    user = factories.UserFactory(username="outsider", email="outsider@example.test")
    factories.MembershipFactory(user=user, department=other_department, role=Membership.Role.AGENT)
    return user


@pytest.fixture
def billing_channel(other_department):
    ch = factories.ChannelFactory(
        kind="email", name="Billing mailbox", slug="billing-mail", department=other_department
    )
    factories.ServicePromiseFactory(channel=ch)
    return ch


def minutes_ago(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


def open_case(
    *,
    channel,
    customer=None,
    identity=None,
    subject: str = "",
    text: str = "Hello, I need help",
    kind: str = "post",
    wrote_minutes_ago: float = 1,
    assignee=None,
    priority: str = "normal",
):
    """A case opened by one customer message on ``channel``, optionally claimed by ``assignee``."""
    customer = customer or factories.CustomerFactory()
    identity = identity or factories.IdentityFactory(
        customer=customer, kind=channel.kind, platform_id=_platform_id(channel.kind)
    )
    case = services.case_open(customer=customer, channel=channel, subject=subject, priority=priority)
    services.message_add(
        case=case,
        direction="in",
        kind=kind,
        text=text,
        channel=channel,
        identity=identity,
        is_public=kind in ("post", "comment"),
        sent_at=minutes_ago(wrote_minutes_ago),
    )
    if assignee is not None:
        services.case_claim(case=case, actor=assignee)
    case.refresh_from_db()
    return case


_counter = iter(range(10**9))


def _platform_id(kind: str) -> str:
    n = next(_counter)
    if kind == "email":
        return f"customer{n}@example.test"
    if kind in ("phone", "whatsapp"):
        return f"+1202555{n % 10000:04d}"
    return str(500000 + n)


def crossed_case(channels, agent):
    """A complaint that began as a tweet, moved to a DM, then e-mail, then a call; stored out of order."""
    customer = factories.CustomerFactory(name="Sam Porter", tier="vip")
    x = factories.IdentityFactory(
        customer=customer,
        kind="x",
        platform_id="9001",
        handle="@samp",
        display_name="Sam P",
        follower_count=12840,
    )
    mail = factories.IdentityFactory(
        customer=customer,
        kind="email",
        platform_id="sam@example.test",
        handle="sam@example.test",
        link_source="agent",
    )
    phone = factories.IdentityFactory(
        customer=customer,
        kind="phone",
        platform_id="+12025550143",
        handle="+12025550143",
        link_source="suggested",
    )
    case = services.case_open(customer=customer, channel=channels["x"], subject="Router keeps dropping")
    add = services.message_add
    # Inserted in a different order from when they were written.
    email = add(
        case=case,
        direction="in",
        kind="email",
        channel=channels["email"],
        identity=mail,
        subject=f"Re: [#{case.reference}] Router",
        text="Serial number is <b>RX-42</b>.",
        html="<p>Serial <b>RX-42</b></p><script>alert(1)</script>",
        sent_at=minutes_ago(30),
    )
    tweet = add(
        case=case,
        direction="in",
        kind="post",
        channel=channels["x"],
        identity=x,
        is_public=True,
        text="@brand my router keeps dropping!",
        sent_at=minutes_ago(120),
    )
    call = add(
        case=case,
        direction="in",
        kind="call",
        channel=channels["phone"],
        identity=phone,
        text="Call from +12025550143",
        call_duration=185,
        recording_url="https://media.example.test/rec1.mp3",
        sent_at=minutes_ago(10),
    )
    dm = add(
        case=case,
        direction="in",
        kind="dm",
        channel=channels["x"],
        identity=x,
        text="Here is my account number",
        sent_at=minutes_ago(90),
    )
    reply = add(
        case=case,
        direction="out",
        kind="dm",
        channel=channels["x"],
        identity=x,
        author=agent,
        text="Thanks, checking now",
        delivery_state="sent",
        sent_at=minutes_ago(80),
    )
    note = services.note_add(case=case, author=agent, text="Line test scheduled")
    Attachment.objects.create(
        message=email, filename="bill.pdf", external_url="https://files.example.test/bill.pdf", size=20480
    )
    return case, [tweet, dm, reply, email, call, note]
