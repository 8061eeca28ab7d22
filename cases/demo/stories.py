"""The demo's conversations: each a story of steps (a tweet, a move to DMs, an e-mail, a
call...) played through the services, then dated back into the last weeks."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import F

from connectors.models import Channel
from customers.models import Customer, Identity

from .. import services, sla
from ..models import (
    Case,
    CaseEvent,
    Membership,
    Message,
)
from .customers import CUSTOMER_EMAIL_DOMAINS
from .organisation import (
    DEMO_AGENT_CROSS_CHANNEL,
    DEMO_CASES,
    DEMO_CROSS_CHANNEL,
    DEMO_EXTERNAL_PREFIX,
    DEMO_SEED,
    Organisation,
    SeedSummary,
)
from .topics import (
    CALL_QUOTE,
    DM_TO_EMAIL,
    EMAIL_REPLY,
    FOLLOW_UP_EMAIL,
    PRAISE,
    PRAISE_REPLY,
    PUBLIC_TO_DM,
    RANT_REPLY,
    RANTS,
    TOPICS,
    topic_facts,
)


@dataclass
class _Step:
    """One thing that happens to a case, ``gap`` minutes after the previous one."""

    gap: float
    run: Callable[[_Story, datetime], None]


class _Story:
    """Plays a planned conversation through the services, at past times that end before now."""

    def __init__(
        self, *, org: Organisation, customer: Customer, identities: dict, rng, counter, topic, facts
    ):
        self.org = org
        self.customer = customer
        self.identities = identities  # by kind
        self.rng = rng
        self.counter = counter
        self.topic = topic
        self.facts = facts
        self.case: Case | None = None
        self.times: list[datetime] = []  # one per service call that writes a CaseEvent
        self.resolved_at: datetime | None = None
        self.notes: list[tuple[Message, datetime]] = []  # note_add stamps now; the story has its own time
        self.last_inbound: Message | None = None
        self.thread_key = ""

    def text(self, template: str, agent=None) -> str:
        values = dict(self.facts)
        values["ref"] = self.case.reference if self.case else ""
        if agent is not None:
            values["sig"] = f"{agent.first_name[:1]}{agent.last_name[:1]}"
            values["agent"] = agent.get_full_name()
        else:
            values.setdefault("sig", "CA")
            values.setdefault("agent", "The Caseline Air team")
        return template.format(**values)

    def external_id(self, kind: str) -> str:
        self.counter["external"] += 1
        return f"{DEMO_EXTERNAL_PREFIX}{kind}-{self.counter['external']:06d}"

    # Each action below is one service call.
    def open(self, at, *, kind: str, priority: str | None = None):
        channel = self.org.channels[kind]
        priority = priority or self.topic.priority
        if self.customer.tier == Customer.Tier.VIP and priority in (Case.Priority.LOW, Case.Priority.NORMAL):
            priority = Case.Priority.HIGH
        self.case = services.case_open(
            customer=self.customer,
            channel=channel,
            subject=self.text(self.topic.subject),
            priority=priority,
            category=self.topic.category,
        )
        self.times.append(at)

    def inbound(self, at, *, channel_kind, kind, template, identity_kind=None, is_public=False, **extra):
        identity = self.identities.get(identity_kind or channel_kind)
        text = self.text(template)
        if channel_kind == Channel.Kind.EMAIL:
            extra.setdefault("subject", f"{self.text(self.topic.subject)} [#{self.case.reference}]")
            if not self.thread_key:
                self.thread_key = f"<{self.external_id('thread')}@{CUSTOMER_EMAIL_DOMAINS[0]}>"
            extra.setdefault("thread_key", self.thread_key)
        self.last_inbound = services.message_add(
            case=self.case,
            direction=Message.Direction.IN,
            kind=kind,
            text=text,
            channel=self.org.channels[channel_kind],
            identity=identity,
            is_public=is_public,
            external_id=self.external_id(channel_kind),
            sent_at=at,
            **extra,
        )
        self.times.append(at)

    def reply(self, at, *, agent, channel_kind, kind, template, is_public=False, **extra):
        text = self.text(template, agent)
        if channel_kind == Channel.Kind.EMAIL:
            extra.setdefault("subject", f"Re: {self.text(self.topic.subject)} [#{self.case.reference}]")
            extra.setdefault("thread_key", self.thread_key)
        answered = (
            self.last_inbound
            if self.last_inbound and self.last_inbound.channel.kind == channel_kind
            else None
        )
        services.message_add(
            case=self.case,
            direction=Message.Direction.OUT,
            kind=kind,
            text=text,
            channel=self.org.channels[channel_kind],
            identity=self.identities.get(channel_kind),
            author=agent,
            is_public=is_public,
            external_id=self.external_id(channel_kind),
            reply_to=answered,
            in_reply_to_external_id=answered.external_id if answered else "",
            delivery_state=Message.Delivery.DELIVERED,
            sent_at=at,
            **extra,
        )
        self.times.append(at)

    def note(self, at, *, agent, template):
        message = services.note_add(case=self.case, author=agent, text=self.text(template, agent))
        self.notes.append((message, at))
        self.times.append(at)

    def claim(self, at, *, agent):
        services.case_claim(case=self.case, actor=agent)
        self.case.refresh_from_db()
        self.times.append(at)

    def transfer(self, at, *, to, actor, reason, note=""):
        services.case_transfer(
            case=self.case, to_department=self.org.departments[to], actor=actor, reason=reason, note=note
        )
        self.case.refresh_from_db()
        self.times.append(at)

    def status(self, at, *, status, actor, reason=""):
        services.case_set_status(case=self.case, status=status, actor=actor, reason=reason)
        self.case.refresh_from_db()
        if status in (Case.Status.RESOLVED, Case.Status.CLOSED):
            self.resolved_at = at
        self.times.append(at)


def _plan(story: _Story, flow: str, *, agent, colleague, supervisor, receiver) -> list[_Step]:
    """The steps of one conversation of the given shape."""
    t = story.topic
    rng = story.rng
    social = story.facts["social_kind"]
    public_kind = Message.Kind.POST if social == "x" else Message.Kind.COMMENT
    private_kind = Message.Kind.DM
    minutes = lambda low, high: rng.uniform(low, high)  # noqa: E731

    def inbound(channel_kind, kind, template, **kw):
        return lambda s, at: s.inbound(at, channel_kind=channel_kind, kind=kind, template=template, **kw)

    def reply(channel_kind, kind, template, who=None, **kw):
        return lambda s, at: s.reply(
            at, agent=who or agent, channel_kind=channel_kind, kind=kind, template=template, **kw
        )

    steps: list[_Step] = []
    if flow == "cross_channel":
        if receiver == "keep":
            # Still being worked: the whole conversation fits in the last half day, so
            # its promises are running rather than long broken.
            minutes = lambda low, high: rng.uniform(low, high) / 4  # noqa: E731
        steps += [
            _Step(0, lambda s, at: s.open(at, kind="x")),
            _Step(0.1, inbound("x", Message.Kind.POST, t.post, is_public=True)),
            _Step(minutes(2, 40), lambda s, at: s.claim(at, agent=agent)),
            _Step(minutes(1, 10), reply("x", Message.Kind.POST, PUBLIC_TO_DM, is_public=True)),
            _Step(minutes(5, 90), inbound("x", Message.Kind.DM, t.private)),
            _Step(minutes(3, 40), reply("x", Message.Kind.DM, DM_TO_EMAIL)),
            _Step(minutes(60, 600), inbound("email", Message.Kind.EMAIL, t.email)),
            _Step(
                minutes(30, 300), reply("email", Message.Kind.EMAIL, EMAIL_REPLY.replace("{reply}", t.reply))
            ),
            _Step(
                minutes(120, 1500),
                inbound("phone", Message.Kind.CALL, t.call + CALL_QUOTE, call_duration=rng.randint(95, 1100)),
            ),
            _Step(minutes(1, 15), lambda s, at: s.note(at, agent=agent, template=t.note)),
        ]
        if receiver is None:  # the agent keeps it, answering by e-mail after the call
            steps.append(_Step(minutes(10, 120), reply("email", Message.Kind.EMAIL, t.resolution)))
            if rng.random() < 0.6:
                steps.append(
                    _Step(minutes(1, 5), lambda s, at: s.status(at, status=Case.Status.RESOLVED, actor=agent))
                )
        elif receiver == "keep":  # the customer sends what was asked for on the call
            steps.append(
                _Step(minutes(10, 200), inbound("email", Message.Kind.EMAIL, FOLLOW_UP_EMAIL + t.follow_up))
            )
        else:
            steps.append(
                _Step(
                    minutes(5, 60),
                    lambda s, at: s.transfer(
                        at,
                        to="customer-service",
                        actor=supervisor,
                        reason="Customer moved to e-mail and phone; Customer Service owns it from here.",
                        note="Spoke to the customer by phone; details in the e-mail thread.",
                    ),
                )
            )
        return steps

    opener_kind = story.facts["opener_kind"]
    opener_channel = story.facts["opener_channel"]
    opener_public = opener_kind in (Message.Kind.POST, Message.Kind.COMMENT)
    first_text = {Message.Kind.EMAIL: t.email, Message.Kind.CALL: t.call}.get(
        opener_kind, t.post if opener_public else t.private
    )
    steps += [
        _Step(0, lambda s, at: s.open(at, kind=opener_channel)),
        _Step(0.1, inbound(opener_channel, opener_kind, first_text, is_public=opener_public,
                           **({"call_duration": rng.randint(60, 900)} if opener_kind == Message.Kind.CALL else {}))),
    ]  # fmt: skip
    answer_kind = opener_kind if opener_kind != Message.Kind.CALL else Message.Kind.CALL
    follow_kind = private_kind if opener_public else opener_kind
    reply_extra = {"call_duration": rng.randint(60, 600)} if answer_kind == Message.Kind.CALL else {}

    if flow == "unanswered":
        if rng.random() < 0.4:
            steps.append(_Step(minutes(5, 60), inbound(opener_channel, follow_kind, t.follow_up)))
        return steps
    if flow == "monitoring":
        if rng.random() < 0.5:
            steps.append(
                _Step(minutes(5, 50), reply(opener_channel, answer_kind, story.facts["monitor_reply"],
                                            is_public=opener_public))
            )  # fmt: skip
        steps.append(
            _Step(minutes(1, 5), lambda s, at: s.status(
                at, status=Case.Status.MONITORING, actor=agent, reason="Venting; no answer owed."))
        )  # fmt: skip
        return steps

    steps.append(_Step(minutes(2, 30), lambda s, at: s.claim(at, agent=agent)))
    if opener_public:
        steps.append(_Step(minutes(1, 20), reply(opener_channel, public_kind, PUBLIC_TO_DM, is_public=True)))
        steps.append(_Step(minutes(5, 120), inbound(opener_channel, private_kind, t.private)))
    steps.append(_Step(minutes(3, 60), reply(opener_channel, follow_kind, t.reply, **reply_extra)))

    if flow == "awaiting":
        steps.append(_Step(minutes(30, 900), inbound(opener_channel, follow_kind, t.follow_up)))
    elif flow == "waiting":
        steps.append(
            _Step(minutes(1, 5), lambda s, at: s.status(
                at, status=Case.Status.WAITING_ON_CUSTOMER, actor=agent, reason="Asked for the booking details."))
        )  # fmt: skip
    elif flow == "resolved":
        if rng.random() < 0.5:
            steps.append(_Step(minutes(30, 900), inbound(opener_channel, follow_kind, t.follow_up)))
        if rng.random() < 0.3:
            steps.append(_Step(minutes(1, 20), lambda s, at: s.note(at, agent=agent, template=t.note)))
        steps.append(_Step(minutes(5, 300), reply(opener_channel, follow_kind, t.resolution, **reply_extra)))
        steps.append(
            _Step(minutes(1, 10), lambda s, at: s.status(at, status=Case.Status.RESOLVED, actor=agent))
        )
    elif flow == "transferred":
        steps.append(_Step(minutes(2, 30), lambda s, at: s.note(at, agent=agent, template=t.note)))
        steps.append(
            _Step(minutes(2, 60), lambda s, at: s.transfer(
                at, to=t.transfer_to, actor=supervisor, reason=t.transfer_reason,
                note=s.text("Customer told to expect an update from us. " + t.note)))
        )  # fmt: skip
        if colleague is not None and rng.random() < 0.8:
            steps.append(_Step(minutes(10, 600), lambda s, at: s.claim(at, agent=colleague)))
            steps.append(
                _Step(
                    minutes(10, 900),
                    reply(opener_channel, follow_kind, t.resolution, who=colleague, **reply_extra),
                )
            )
            if rng.random() < 0.6:
                steps.append(
                    _Step(
                        minutes(1, 30),
                        lambda s, at: s.status(at, status=Case.Status.RESOLVED, actor=colleague),
                    )
                )
    return steps


# Shapes of the non-cross-channel conversations and how often each occurs.
FLOWS = {"resolved": 30, "awaiting": 14, "waiting": 8, "unanswered": 16, "monitoring": 8, "transferred": 14}
OPENERS = {  # channel kind -> (message kind, weight)
    "x": [(Message.Kind.POST, 3), (Message.Kind.DM, 1)],
    "facebook": [(Message.Kind.COMMENT, 2), (Message.Kind.DM, 1)],
    "instagram": [(Message.Kind.COMMENT, 2), (Message.Kind.DM, 1)],
    "whatsapp": [(Message.Kind.DM, 1)],
    "email": [(Message.Kind.EMAIL, 1)],
    "phone": [(Message.Kind.CALL, 1)],
}


def _play(story: _Story, steps: list[_Step], *, end_at: datetime) -> None:
    """Run ``steps`` so that the last one happens at ``end_at``."""
    total = sum(step.gap for step in steps)
    at = end_at - timedelta(minutes=total)
    for step in steps:
        at += timedelta(minutes=step.gap)
        step.run(story, at)


def seed_cases(org: Organisation, customers: list[Customer], *, count: int = DEMO_CASES,
               cross_channel: int = DEMO_CROSS_CHANNEL, summary: SeedSummary | None = None) -> list[Case]:  # fmt: skip
    """A few hundred conversations, written through the services, backdated over the last week."""
    summary = summary or SeedSummary()
    rng = random.Random(DEMO_SEED + 1)
    now = datetime.now(UTC)
    counter: Counter = Counter()
    identities_by_customer: dict[int, dict] = {}
    for ident in Identity.objects.filter(customer__in=customers).order_by("id"):
        identities_by_customer.setdefault(ident.customer_id, {}).setdefault(ident.kind, ident)
    supervisor = org.users["supervisor"]
    demo_agent = org.users["agent"]
    sc_agents = org.members("social-care", Membership.Role.AGENT)
    flows, flow_weights = list(FLOWS), list(FLOWS.values())
    stories: list[_Story] = []

    for index in range(count):
        if index < cross_channel:
            customer = customers[index]
            flow = "cross_channel"
        else:
            customer = customers[cross_channel + rng.randrange(len(customers) - cross_channel)]
            flow = rng.choices(flows, flow_weights)[0]
        identities = identities_by_customer[customer.pk]
        first_kind = next(iter(identities))
        topic = rng.choice(TOPICS)
        facts = topic_facts(rng, customer, now)
        opener_channel = first_kind
        opener_kind = rng.choices(*zip(*OPENERS[opener_channel], strict=True))[0]
        if flow == "monitoring":
            opener_channel = "x" if "x" in identities else first_kind
            if opener_channel not in ("x", "facebook", "instagram"):
                flow = "unanswered"
            else:
                opener_kind = Message.Kind.POST if opener_channel == "x" else Message.Kind.COMMENT
                praise = rng.random() < 0.5
                topic = dataclasses.replace(
                    topic,
                    subject="Kind words about {flight}" if praise else "Public complaint from {origin}",
                    category=Case.Category.PRAISE if praise else Case.Category.RANT,
                    priority=Case.Priority.LOW,
                    post=rng.choice(PRAISE if praise else RANTS),
                )
                facts["monitor_reply"] = PRAISE_REPLY if praise else RANT_REPLY
        if flow == "transferred" and not topic.transfer_to:
            flow = "resolved"
        facts.update(social_kind=opener_channel, opener_channel=opener_channel, opener_kind=opener_kind)

        department = org.channels[opener_channel].department.slug
        pool = org.members(department, Membership.Role.AGENT)
        colleague = None
        receiver = None
        if flow == "cross_channel":
            # The demo agent works the first few, open and waiting for them; others are
            # finished by colleagues or handed to Customer Service.
            if index < DEMO_AGENT_CROSS_CHANNEL:
                agent, receiver = demo_agent, "keep"
            else:
                agent = rng.choice([a for a in sc_agents if a != demo_agent])
                receiver = None if rng.random() < 0.6 else "customer-service"
        else:
            agent = demo_agent if department == "social-care" and rng.random() < 0.08 else rng.choice(pool)
            if flow == "transferred":
                target_pool = org.members(topic.transfer_to, Membership.Role.AGENT)
                if topic.transfer_to == department:
                    flow = "resolved"
                else:
                    colleague = rng.choice(target_pool) if target_pool else None

        story = _Story(org=org, customer=customer, identities=identities, rng=rng, counter=counter,
                       topic=topic, facts=facts)  # fmt: skip
        steps = _plan(story, flow, agent=agent, colleague=colleague, supervisor=supervisor, receiver=receiver)
        if receiver == "keep":
            end_at = now - timedelta(minutes=rng.uniform(2, 60))
        elif flow in ("unanswered", "awaiting"):
            # Mostly recent, so most promises are on track, some at risk, a few broken.
            end_at = now - timedelta(
                minutes=rng.choice(
                    [rng.uniform(2, 40)] * 13 + [rng.uniform(40, 600)] * 6 + [rng.uniform(600, 3000)]
                )
            )
        else:
            end_at = now - timedelta(minutes=rng.uniform(30, 6 * 24 * 60))
        _play(story, steps, end_at=end_at)
        stories.append(story)
        summary.created["cases"] += 1
        if flow == "cross_channel":
            summary.cross_channel_cases.append(story.case.reference)

    _backdate(stories)
    # The hooks only keep or clear SLA states; worsening is the sweep's job. Run it once so
    # the first look at the demo shows which promises are already at risk or broken.
    sla.sla_sweep()
    return [story.case for story in stories]


def _backdate(stories: list[_Story]) -> None:
    """Give the demo's history the times the conversations happened at.

    The services stamp ``now`` on the rows they create; a demo that just "happened"
    in one second looks wrong in every report and timeline, so the audit rows, the
    cases' creation and resolution times and the messages' storage times are set to
    the story's times here, in bulk.
    """
    cases, events, notes = [], [], []
    event_ids = {}
    for row in (
        CaseEvent.objects.filter(case__in=[s.case.pk for s in stories]).order_by("id").values("id", "case_id")
    ):
        event_ids.setdefault(row["case_id"], []).append(row["id"])
    for story in stories:
        ids = event_ids.get(story.case.pk, [])
        if len(ids) == len(story.times):
            events += [CaseEvent(pk=pk, created_at=at) for pk, at in zip(ids, story.times, strict=True)]
        story.case.created_at = story.times[0]
        if story.resolved_at:
            story.case.resolved_at = story.resolved_at
        cases.append(story.case)
        for message, at in story.notes:
            message.sent_at = at
            notes.append(message)
    Case.objects.bulk_update(cases, ["created_at", "resolved_at"], batch_size=500)
    CaseEvent.objects.bulk_update(events, ["created_at"], batch_size=500)
    Message.objects.bulk_update(notes, ["sent_at"], batch_size=500)
    Message.objects.filter(case__in=[c.pk for c in cases]).update(created_at=F("sent_at"))
