"""Bulk data for benchmarks: many customers, identities, cases and messages, fast.

Rows are built in memory as plain tuples and written a batch of cases at a time, each
batch in its own transaction: with PostgreSQL's COPY (psycopg 3) when the database is
PostgreSQL, else with ``bulk_create``. Nothing here goes through the services: a
million service calls would take hours. Instead each case's service clocks are
computed by ``cases.sla`` on the unsaved case, the same code the services use, so due
times and ``sla_state`` agree with the messages.

The organisation (departments, channels, promises) comes from ``cases.demo`` and is
created if missing. Platform ids and references never collide with existing rows.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import connection, models, transaction
from django.db.models import F, OuterRef, Subquery

from customers.models import Customer, Identity

from . import demo, sla
from .models import Case, CaseEvent, Membership, Message, new_reference

CUSTOMERS_PER_CASE = 0.7
IDENTITY_KIND_WEIGHTS = demo.FIRST_KIND_WEIGHTS
STATUS_WEIGHTS = {
    Case.Status.NEW: 15,
    Case.Status.OPEN: 45,
    Case.Status.WAITING_ON_CUSTOMER: 10,
    Case.Status.MONITORING: 5,
    Case.Status.RESOLVED: 20,
    Case.Status.CLOSED: 5,
}
PRIORITY_WEIGHTS = {
    Case.Priority.LOW: 20,
    Case.Priority.NORMAL: 55,
    Case.Priority.HIGH: 20,
    Case.Priority.URGENT: 5,
}
# Share of cases handed over to a department other than the channel's.
TRANSFERRED_SHARE = {"billing": 0.12, "technical-support": 0.10}
NOTE_SHARE = 0.05
# How far back conversations start: finished ones up to a month, open ones up to three days.
CLOSED_SPAN_MINUTES = 30 * 24 * 60
OPEN_SPAN_MINUTES = 3 * 24 * 60

PUBLIC_KINDS = {"x": Message.Kind.POST, "facebook": Message.Kind.COMMENT, "instagram": Message.Kind.COMMENT}
PRIVATE_KINDS = {
    "x": Message.Kind.DM,
    "facebook": Message.Kind.DM,
    "instagram": Message.Kind.DM,
    "whatsapp": Message.Kind.DM,
    "email": Message.Kind.EMAIL,
    "phone": Message.Kind.CALL,
}


@dataclass
class LoadResult:
    """What one run wrote and how long each part took."""

    method: str
    vendor: str
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    @property
    def total_seconds(self) -> float:
        return self.seconds.get("total", 0.0)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.total_seconds if self.total_seconds else 0.0

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "vendor": self.vendor,
            "counts": dict(self.counts),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "rows": self.rows,
            "rows_per_second": round(self.rows_per_second),
        }


# --- Writers --------------------------------------------------------------------------------


class _Table:
    """The columns of one model in a fixed order: varying ones first, then constant defaults."""

    def __init__(self, model: type[models.Model], varying: Sequence[str], *, with_pk: bool):
        self.model = model
        fields = [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]
        by_attname = {f.attname: f for f in fields}
        missing = [name for name in varying if name not in by_attname]
        if missing:
            raise ValueError(f"{model.__name__} has no column(s) {missing}")
        self.varying = list(varying)
        constant_fields = [f for f in fields if f.attname not in set(varying)]
        self.constant_names = [f.attname for f in constant_fields]
        self.constants = tuple(f.get_default() for f in constant_fields)
        self.attnames = self.varying + self.constant_names
        self.fields = [by_attname[name] for name in self.attnames]
        self.columns = [f.column for f in self.fields]
        self.json_positions = [i for i, f in enumerate(self.fields) if isinstance(f, models.JSONField)]


class _CopyWriter:
    """PostgreSQL: ids reserved from the table's sequence, rows streamed with COPY."""

    method = "copy"
    ids_in_advance = True

    def reserve_ids(self, model: type[models.Model], count: int) -> list[int]:
        table = model._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [connection.ops.quote_name(table), count],
            )
            return [row[0] for row in cursor.fetchall()]

    def write(self, table: _Table, rows: Iterable[tuple]) -> None:
        columns = ", ".join(connection.ops.quote_name(c) for c in table.columns)
        sql = f"COPY {connection.ops.quote_name(table.model._meta.db_table)} ({columns}) FROM STDIN"
        json_positions = table.json_positions
        constants = tuple(json.dumps(v) if i + len(table.varying) in json_positions else v
                          for i, v in enumerate(table.constants))  # fmt: skip
        varying_json = [i for i in json_positions if i < len(table.varying)]
        with connection.cursor() as cursor, cursor.copy(sql) as copy:
            write_row = copy.write_row
            for row in rows:
                if varying_json:
                    row = list(row)
                    for i in varying_json:
                        row[i] = json.dumps(row[i])
                    write_row((*row, *constants))
                else:
                    write_row(row + constants)

    def stamp(self, **kwargs) -> None:
        """Timestamps were written as given: nothing to fix."""


class _OrmWriter:
    """Any database: ``bulk_create``, which returns the new ids on SQLite and PostgreSQL."""

    method = "orm"
    ids_in_advance = False

    def __init__(self, batch: int):
        self.batch = batch

    def reserve_ids(self, model, count):
        return [None] * count

    def write(self, table: _Table, rows: list[tuple]) -> list[int]:
        objs = [table.model(**dict(zip(table.attnames, row + table.constants, strict=True))) for row in rows]
        table.model.objects.bulk_create(objs, batch_size=self.batch)
        return [obj.pk for obj in objs]

    def stamp(self, *, case_ids: list[int]) -> None:
        """bulk_create stamps ``now`` on auto_now_add columns; give the history its own times."""
        Case.objects.filter(pk__in=case_ids).update(created_at=F("first_inbound_at"))
        Message.objects.filter(case_id__in=case_ids).update(created_at=F("sent_at"))
        CaseEvent.objects.filter(case_id__in=case_ids).update(
            created_at=Subquery(Case.objects.filter(pk=OuterRef("case_id")).values("created_at")[:1])
        )


# --- Generation -----------------------------------------------------------------------------


class _Texts:
    """Pools of believable message texts per demo topic, built once: one topic per case."""

    def __init__(self, rng: random.Random, variants: int = 40):
        from faker import Faker

        fake = Faker("en_GB")
        fake.seed_instance(rng.randrange(2**32))
        self.names = [fake.name() for _ in range(500)]
        self.topics = []  # (subject, inbound texts, outbound texts, notes) per topic
        customer = Customer(name="")
        now = datetime.now(UTC)
        for topic in demo.TOPICS:
            inbound, outbound, notes = [], [], []
            for _ in range(variants):
                customer.name = rng.choice(self.names)
                facts = demo.topic_facts(rng, customer, now)
                facts.update(sig="CA", ref="", agent="Caseline Air")
                inbound += [t.format(**facts) for t in (topic.post, topic.private, topic.follow_up)]
                outbound += [t.format(**facts) for t in (topic.reply, topic.resolution)]
                notes.append(topic.note.format(**facts))
            self.topics.append((topic.subject.split(" {")[0], inbound, outbound, notes))


def _weighted(rng: random.Random, weights: dict) -> Callable[[], object]:
    values, cum = list(weights), []
    total = 0.0
    for w in weights.values():
        total += w
        cum.append(total)
    return lambda: rng.choices(values, cum_weights=cum)[0]


class _Generator:
    def __init__(self, *, rng: random.Random, messages_per_case: int, now: datetime):
        self.rng = rng
        self.m = messages_per_case
        self.now = now
        self.org = demo.seed_organisation()
        self.channels = self.org.channels  # by kind
        self.departments = self.org.departments
        agents: dict[int, list[int]] = {}
        for user_id, dept_id in Membership.objects.values_list("user_id", "department_id"):
            agents.setdefault(dept_id, []).append(user_id)
        self.agents = agents
        self.texts = _Texts(rng)
        self.pick_kind = _weighted(rng, IDENTITY_KIND_WEIGHTS)
        self.pick_status = _weighted(rng, STATUS_WEIGHTS)
        self.pick_priority = _weighted(rng, PRIORITY_WEIGHTS)
        self.categories = [c for c in Case.Category.values if c]
        self.references = set(Case.objects.values_list("reference", flat=True))
        # Platform ids continue from the highest identity id so re-runs never collide.
        self.serial = (Identity.objects.aggregate(top=models.Max("id"))["top"] or 0) + 1

        self.customers = _Table(Customer, ["id", "name", "tier", "created_at", "updated_at"], with_pk=True)
        self.identities = _Table(
            Identity,
            ["id", "customer_id", "kind", "platform_id", "handle", "display_name", "follower_count",
             "link_source", "linked_at", "created_at", "updated_at"],
            with_pk=True,
        )  # fmt: skip
        self.messages = _Table(
            Message,
            ["case_id", "channel_id", "identity_id", "author_id", "direction", "kind", "is_public",
             "external_id", "text", "subject", "call_duration", "delivery_state", "idempotency_key",
             "sent_at", "created_at"],
            with_pk=False,
        )  # fmt: skip
        self.events = _Table(CaseEvent, ["case_id", "actor_id", "kind", "after", "created_at"], with_pk=False)
        self.case_fields = [f for f in Case._meta.concrete_fields]

    def reference(self) -> str:
        while True:
            ref = new_reference()
            if ref not in self.references:
                self.references.add(ref)
                return ref

    def platform_id(self, kind: str, n: int) -> tuple[str, str]:
        """A canonical platform id (and handle) unique to serial ``n``."""
        if kind == "x":
            return str(1_500_000_000_000_000_000 + n), f"@loadcustomer{n}"
        if kind == "facebook":
            return str(7_000_000_000_000_000 + n), f"Load Customer {n}"
        if kind == "instagram":
            return str(17_900_000_000_000_000 + n), f"@load.customer{n}"
        if kind == "email":
            return f"customer{n}@load.example.com", f"customer{n}@load.example.com"
        phone = f"+4478{n % 100_000_000:08d}"  # E.164, a UK mobile number shape
        return phone, phone

    def customers_and_identities(self, writer, count: int) -> list[tuple[int, dict[str, int], str]]:
        """Write ``count`` customers with 1-3 identities; return (customer id, identity id by kind, first kind)."""
        rng, now = self.rng, self.now
        customer_ids = writer.reserve_ids(Customer, count)
        rows, plan = [], []
        for cid in customer_ids:
            name = rng.choice(self.texts.names)
            vip = rng.random() < 0.03
            rows.append((cid, name, Customer.Tier.VIP if vip else Customer.Tier.STANDARD, now, now))
            kinds = [self.pick_kind()]
            if kinds[0] != "email" and rng.random() < 0.25:
                kinds.append("email")
            if kinds[0] not in ("phone", "whatsapp") and rng.random() < 0.08:
                kinds.append("phone")
            plan.append((name, vip, kinds))
        written = writer.write(self.customers, rows)
        if written is not None:
            customer_ids = written

        identity_rows, owners = [], []
        for cid, (name, vip, kinds) in zip(customer_ids, plan, strict=True):
            for position, kind in enumerate(kinds):
                n = self.serial
                self.serial += 1
                platform_id, handle = self.platform_id(kind, n)
                followers = (
                    int(rng.lognormvariate(9 if vip else 5, 1.4)) if kind in ("x", "instagram") else None
                )
                source = (
                    Identity.LinkSource.VERIFIED if position == 0 else rng.choice(Identity.LinkSource.values)
                )
                identity_rows.append(
                    [None, cid, kind, platform_id, handle, name, followers, source, now, now, now]
                )
                owners.append((cid, kind))
        identity_ids = writer.reserve_ids(Identity, len(identity_rows))
        for row, iid in zip(identity_rows, identity_ids, strict=True):
            row[0] = iid
        written = writer.write(self.identities, [tuple(r) for r in identity_rows])
        if written is not None:
            identity_ids = written
        by_customer: dict[int, dict[str, int]] = {}
        for (cid, kind), iid in zip(owners, identity_ids, strict=True):
            by_customer.setdefault(cid, {})[kind] = iid
        return [
            (cid, by_customer[cid], kinds[0]) for cid, (_, _, kinds) in zip(customer_ids, plan, strict=True)
        ]

    def case(self, customer: tuple[int, dict[str, int], str]) -> tuple[Case, list[tuple]]:
        """One unsaved case and its messages' varying columns (case id filled in later)."""
        rng, now, m = self.rng, self.now, self.m
        customer_id, identities, first_kind = customer
        channel = self.channels[first_kind]
        department_id = channel.department_id
        roll = rng.random()
        for slug, share in TRANSFERRED_SHARE.items():
            if roll < share:
                department_id = self.departments[slug].pk
                break
            roll -= share
        status = self.pick_status()
        priority = self.pick_priority()
        agents = self.agents.get(department_id) or [None]
        assignee = None if status == Case.Status.NEW or rng.random() < 0.1 else rng.choice(agents)

        # Directions: new cases are unanswered; open ones await our reply; waiting and
        # finished ones end with ours.
        if status in (Case.Status.NEW, Case.Status.MONITORING):
            directions = ["in"] * m
        else:
            directions = ["in" if i % 2 == 0 else "out" for i in range(m)]
            if status == Case.Status.OPEN and directions[-1] == "out":
                directions[-1] = "in"
            elif status not in (Case.Status.OPEN,) and directions[-1] == "in" and m > 1:
                directions[-1] = "out"
        directions = [d if d == "in" or rng.random() > NOTE_SHARE else "note" for d in directions]
        if directions:
            directions[0] = "in"

        finished = status in (Case.Status.RESOLVED, Case.Status.CLOSED)
        span = CLOSED_SPAN_MINUTES if finished else OPEN_SPAN_MINUTES
        gaps = [rng.uniform(2, 240) for _ in range(max(m - 1, 0))]
        # Open conversations are mostly recent: a few hours on average, some days old.
        ago = rng.uniform(1, span) if finished else min(rng.expovariate(1 / 240) + 1, span)
        end = now - timedelta(minutes=ago)
        at = end - timedelta(minutes=sum(gaps))
        times = [at]
        for gap in gaps:
            at += timedelta(minutes=gap)
            times.append(at)

        subject, inbound_texts, outbound_texts, notes = rng.choice(self.texts.topics)
        case = Case(
            reference=self.reference(),
            customer_id=customer_id,
            department_id=department_id,
            assignee_id=assignee,
            status=Case.Status.NEW,
            priority=priority,
            category=rng.choice(self.categories) if rng.random() < 0.8 else "",
            subject=subject,
            origin_channel=channel,
            last_channel=channel,
        )
        identity_id = identities.get(first_kind)
        public_kind = PUBLIC_KINDS.get(first_kind)
        private_kind = PRIVATE_KINDS[first_kind]
        messages = []
        previous = None  # the direction of the previous message to or from the customer
        for i, (direction, sent_at) in enumerate(zip(directions, times, strict=True)):
            if direction == "note":
                messages.append((None, None, None, assignee or rng.choice(agents), "note", Message.Kind.NOTE, False, "",
                                 rng.choice(notes), "", None, "", uuid.uuid4(), sent_at, sent_at))  # fmt: skip
                continue
            kind = public_kind if (public_kind and i < 2) else private_kind
            inbound = direction == "in"
            author = None if inbound else (assignee or rng.choice(agents))
            messages.append((
                None, channel.pk, identity_id, author, direction, kind, kind in (Message.Kind.POST, Message.Kind.COMMENT),
                str(i), rng.choice(inbound_texts if inbound else outbound_texts),
                case.subject if kind == Message.Kind.EMAIL else "",
                rng.randint(40, 1200) if kind == Message.Kind.CALL else None,
                "" if inbound else Message.Delivery.DELIVERED, uuid.uuid4(), sent_at, sent_at,
            ))  # fmt: skip
            # Move the clocks as the services would.
            if inbound:
                case.first_inbound_at = case.first_inbound_at or sent_at
                case.last_inbound_at = sent_at
                # A follow-up while the clock runs would re-base it on its channel: the same
                # channel here, so the clock would not move (and the hook would query for it).
                if previous != "in":
                    sla.on_inbound(case, channel=channel, at=sent_at)
            else:
                case.last_outbound_at = sent_at
                if case.status == Case.Status.NEW:
                    case.status = Case.Status.OPEN
                sla.on_reply(case, at=sent_at)
            previous = direction
        if status != case.status:
            previous, case.status = case.status, status
            changed_at = times[-1] + timedelta(minutes=rng.uniform(1, 30))
            if finished:
                case.resolved_at = changed_at
                if status == Case.Status.CLOSED:
                    case.closed_at = changed_at
            sla.on_status_change(case, previous=previous, at=min(changed_at, now))
        if case.status in (Case.Status.NEW, Case.Status.OPEN) and case.due_at is not None:
            # Worsening states are the sweep's to set; this data is as a running sweep left it.
            if case.due_at <= now:
                case.sla_state = Case.SlaState.BREACHED
            elif case.at_risk_at is not None and case.at_risk_at <= now:
                case.sla_state = Case.SlaState.AT_RISK
        case.created_at = case.first_inbound_at or times[0]
        case.updated_at = now
        return case, messages

    def message_rows(self, cases_and_ids: Iterable[tuple[tuple[Case, list[tuple]], int]], built: list[Case]):
        """Each case's message rows with its id filled in; the cases are collected in ``built``."""
        for (case, messages), case_id in cases_and_ids:
            case.pk = case_id
            built.append(case)
            for row in messages:
                # External ids are unique per channel: the case id makes them so.
                external = f"L{case_id}.{row[7]}" if row[7] else ""
                yield (case_id, *row[1:7], external, *row[8:])

    def case_row(self, case: Case) -> tuple:
        return tuple(getattr(case, f.attname) for f in self.case_fields)


def generate_load(
    *,
    cases: int,
    messages_per_case: int = 10,
    batch: int = 5000,
    method: str = "auto",
    seed: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> LoadResult:
    """Write ``cases`` cases with ``messages_per_case`` messages each, and their customers.

    ``method`` is ``copy`` (PostgreSQL only), ``orm`` (bulk_create) or ``auto``.
    Each batch of ``batch`` cases commits on its own.
    """
    for name, value, least in (
        ("cases", cases, 0),
        ("messages-per-case", messages_per_case, 1),
        ("batch", batch, 1),
    ):
        if value < least:
            raise ValueError(f"--{name} must be at least {least} (got {value}).")
    if method == "auto":
        method = "copy" if connection.vendor == "postgresql" else "orm"
    if method == "copy" and connection.vendor != "postgresql":
        raise ValueError("COPY needs PostgreSQL; use method='orm'.")
    writer = _CopyWriter() if method == "copy" else _OrmWriter(batch)
    rng = random.Random(seed)
    now = datetime.now(UTC)
    result = LoadResult(method=method, vendor=connection.vendor)
    counts = result.counts
    for name in ("customers", "identities", "cases", "messages", "case events"):
        counts[name] = 0
    timing = result.seconds
    started = time.monotonic()

    gen = _Generator(rng=rng, messages_per_case=messages_per_case, now=now)
    case_table = _Table(Case, [f.attname for f in gen.case_fields], with_pk=True)
    done = 0
    while done < cases:
        size = min(batch, cases - done)
        t0 = time.monotonic()
        with transaction.atomic():
            customers = gen.customers_and_identities(writer, max(1, round(size * CUSTOMERS_PER_CASE)))
            counts["customers"] += len(customers)
            counts["identities"] += sum(len(c[1]) for c in customers)
            t1 = time.monotonic()
            owners = customers + [rng.choice(customers) for _ in range(size - len(customers))]
            built: list[Case] = []
            if writer.ids_in_advance:
                # Messages first, each case built as its messages stream: PostgreSQL works
                # through one case's rows while the next is generated. The foreign keys
                # are checked at commit, when the cases are there too.
                case_ids = writer.reserve_ids(Case, size)
                cases_built = (gen.case(owner) for owner in owners)
                writer.write(gen.messages, gen.message_rows(zip(cases_built, case_ids, strict=True), built))
                writer.write(case_table, [gen.case_row(case) for case in built])
            else:
                pairs = [gen.case(owner) for owner in owners]
                case_ids = writer.write(case_table, [gen.case_row(case) for case, _ in pairs])
                writer.write(gen.messages, list(gen.message_rows(zip(pairs, case_ids, strict=True), built)))
            events = [
                (case.pk, None, CaseEvent.Kind.CREATED,
                 {"department": case.department_id, "channel": case.origin_channel_id}, case.created_at)
                for case in built
            ]  # fmt: skip
            writer.write(gen.events, events)
            writer.stamp(case_ids=[case.pk for case in built])
        counts["cases"] += size
        counts["messages"] += size * messages_per_case
        counts["case events"] += len(events)
        t2 = time.monotonic()
        timing["customers"] = timing.get("customers", 0.0) + (t1 - t0)
        timing["cases"] = timing.get("cases", 0.0) + (t2 - t1)
        done += size
        if progress:
            elapsed = time.monotonic() - started
            progress(f"{done}/{cases} cases, {counts['messages']} messages, "
                     f"{sum(counts.values()) / elapsed:,.0f} rows/s")  # fmt: skip

    if connection.vendor == "postgresql" and cases:
        t0 = time.monotonic()
        with connection.cursor() as cursor:
            for model in (Customer, Identity, Case, Message, CaseEvent):
                cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
        timing["analyze"] = time.monotonic() - t0
    timing["total"] = time.monotonic() - started
    return result
