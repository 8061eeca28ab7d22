"""Departments, service promises, cases and their timelines."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

from django.conf import settings
from django.db import models
from django.db.models import F, Value
from django.db.models.functions import Coalesce

# Reference tokens avoid characters agents and customers confuse (0/O, 1/I/L, U/V).
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
# New references have six characters (29^6, about 595 million): at five (20.5 million) one new
# case in 200 drew a reference already taken once 100,000 cases were stored, and the insert
# failed and ran again. References issued with five characters stay valid.
REFERENCE_LENGTH = 6
REFERENCE_PATTERN = rf"[{REFERENCE_ALPHABET}]{{5,{REFERENCE_LENGTH}}}"


# The queues sort cases without a running clock after every deadline.
QUEUE_NO_DUE = datetime(9999, 12, 31, tzinfo=UTC)
# Statuses the work queues list (monitoring has its own tab, closed cases none).
QUEUE_WORK_STATUSES = ["new", "open", "waiting_on_customer"]


def new_reference() -> str:
    """A short, speakable case reference such as ``C-7Q4K2X``."""
    return "C-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


class Department(models.Model):
    """A team that owns cases: Social Care, Customer Service, Billing, Technical Support."""

    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's place in a department; supervisors may reassign across departments."""

    class Role(models.TextChoices):
        AGENT = "agent", "Agent"
        SUPERVISOR = "supervisor", "Supervisor"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.AGENT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["department", "user"]
        constraints = [
            models.UniqueConstraint(fields=["user", "department"], name="membership_unique_user_department"),
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.department} ({self.role})"


class EscalationPath(models.Model):
    """Where a department may hand a case, and what triggers the hand-over."""

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual"
        SLA_BREACH = "sla_breach", "Service promise breached"
        PRIORITY = "priority", "Priority at or above"
        CATEGORY = "category", "Category"

    from_department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="paths_out")
    to_department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="paths_in")
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    # Escalation level: the lowest order is tried first.
    order = models.PositiveSmallIntegerField(default=1)
    # For trigger=priority: the lowest priority that escalates. For trigger=category: the category.
    priority_threshold = models.CharField(max_length=16, blank=True)
    category = models.CharField(max_length=32, blank=True)
    is_active = models.BooleanField(default=True)
    # The breach ladder (trigger=sla_breach only): minutes after a case's promise broke at
    # which the SLA sweep warns the assignee, notifies the department's supervisors, and
    # escalates along this path. Empty skips that step.
    warn_after_minutes = models.PositiveIntegerField(null=True, blank=True, default=0)
    notify_after_minutes = models.PositiveIntegerField(null=True, blank=True, default=15)
    escalate_after_minutes = models.PositiveIntegerField(null=True, blank=True, default=30)

    class Meta:
        ordering = ["from_department", "order"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(from_department=models.F("to_department")),
                name="escalationpath_not_to_self",
            ),
            models.UniqueConstraint(
                fields=["from_department", "to_department", "trigger"], name="escalationpath_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.from_department} → {self.to_department} ({self.trigger}, level {self.order})"


class BusinessCalendar(models.Model):
    """Working hours in one time zone, with public holidays and the admin's own days off.

    ``weekly_hours`` maps ISO weekday numbers ("1" is Monday) to lists of
    ``["HH:MM", "HH:MM"]`` spans, so split shifts are several spans in one day.
    A calendar with ``always_open`` is 24/7 and ignores the rest.
    """

    name = models.CharField(max_length=120, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    always_open = models.BooleanField(default=False)
    weekly_hours = models.JSONField(default=dict, blank=True)
    # ISO country (and optional subdivision) for the `holidays` package, e.g. "GB" or "US-NY".
    holiday_country = models.CharField(max_length=16, blank=True)
    # Extra closed dates as ISO strings.
    extra_closed_dates = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ServicePromise(models.Model):
    """What a channel promises customers: response and resolution targets, in working minutes."""

    channel = models.OneToOneField("connectors.Channel", on_delete=models.CASCADE, related_name="promise")
    calendar = models.ForeignKey(
        BusinessCalendar,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="promises",
        help_text="Leave empty for 24/7.",
    )
    first_response_minutes = models.PositiveIntegerField(default=60)
    next_response_minutes = models.PositiveIntegerField(default=60)
    resolution_minutes = models.PositiveIntegerField(default=24 * 60)
    # Share of a target used after which a case is "at risk" (0.75 = 75%).
    at_risk_ratio = models.DecimalField(max_digits=3, decimal_places=2, default=0.75)
    # Tighter targets by priority: {"urgent": {"first_response_minutes": 15}, ...}
    priority_overrides = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    first_response_minutes__gt=0, next_response_minutes__gt=0, resolution_minutes__gt=0
                ),
                name="servicepromise_targets_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(at_risk_ratio__gt=0, at_risk_ratio__lt=1),
                name="servicepromise_ratio_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Promise for {self.channel}"


class Case(models.Model):
    """One customer conversation, across every channel it moves through.

    It has exactly one owning department, at most one assignee, and one set of
    service clocks. ``due_at`` is the earliest running deadline, kept by the services
    so queues can sort on one indexed column.
    """

    class Status(models.TextChoices):
        NEW = "new", "New"
        OPEN = "open", "Open"
        WAITING_ON_CUSTOMER = "waiting_on_customer", "Waiting on customer"
        MONITORING = "monitoring", "Monitoring"
        RESOLVED = "resolved", "Resolved"
        CLOSED = "closed", "Closed"

    class Priority(models.TextChoices):
        LOW = "low", "Low"
        NORMAL = "normal", "Normal"
        HIGH = "high", "High"
        URGENT = "urgent", "Urgent"

    class Category(models.TextChoices):
        NONE = "", "Uncategorised"
        RANT = "rant", "Rant"
        MINOR = "minor", "Minor issue"
        MAJOR = "major", "Major issue"
        QUESTION = "question", "Question"
        PRAISE = "praise", "Praise"

    class SlaState(models.TextChoices):
        NONE = "none", "No clock"
        OK = "ok", "On track"
        AT_RISK = "at_risk", "At risk"
        BREACHED = "breached", "Breached"
        PAUSED = "paused", "Paused"

    class BreachStep(models.IntegerChoices):
        NONE = 0, "No step taken"
        WARNED = 1, "Assignee warned"
        SUPERVISORS_NOTIFIED = 2, "Supervisors notified"
        ESCALATED = 3, "Escalated"

    OPEN_STATUSES = (Status.NEW, Status.OPEN, Status.WAITING_ON_CUSTOMER, Status.MONITORING)
    PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.URGENT: 3}

    reference = models.CharField(max_length=12, unique=True, default=new_reference, editable=False)
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="cases")
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="cases")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_cases",
    )
    # People who keep seeing updates: previous assignees, colleagues who asked to.
    followers = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="followed_cases")
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.NEW)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.NORMAL)
    category = models.CharField(max_length=16, choices=Category.choices, default=Category.NONE, blank=True)
    subject = models.CharField(max_length=255, blank=True)
    origin_channel = models.ForeignKey(
        "connectors.Channel", null=True, blank=True, on_delete=models.PROTECT, related_name="originated_cases"
    )
    # The channel the customer last wrote on: its promise sets the next response due.
    last_channel = models.ForeignKey(
        "connectors.Channel", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # A note from the department that handed this case over, shown at the top.
    handoff_note = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    first_inbound_at = models.DateTimeField(null=True, blank=True)
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    last_outbound_at = models.DateTimeField(null=True, blank=True)
    first_responded_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    # Service clocks. Null means that clock is not running.
    first_response_due_at = models.DateTimeField(null=True, blank=True)
    next_response_due_at = models.DateTimeField(null=True, blank=True)
    resolution_due_at = models.DateTimeField(null=True, blank=True)
    # The earliest of the running deadlines: what queues sort on and the sweep scans.
    due_at = models.DateTimeField(null=True, blank=True)
    # When the earliest deadline becomes "at risk" (a share of its target used).
    at_risk_at = models.DateTimeField(null=True, blank=True)
    sla_state = models.CharField(max_length=16, choices=SlaState.choices, default=SlaState.NONE)
    # When the running response clock (first or next) turns at risk, fixed when the clock
    # starts: the promise's at-risk share of its target, counted in working time.
    response_risk_at = models.DateTimeField(null=True, blank=True)
    # The same for the resolution clock.
    resolution_risk_at = models.DateTimeField(null=True, blank=True)
    # Working seconds left on the resolution clock while it is paused (waiting on the
    # customer, monitoring, resolved, closed). Resuming recomputes resolution_due_at
    # from it. Null when the clock is running or was never started.
    resolution_remaining_seconds = models.PositiveIntegerField(null=True, blank=True)
    # How far the breach ladder went for the current breach; back to NONE when the
    # case's clocks are no longer breached.
    breach_step = models.PositiveSmallIntegerField(choices=BreachStep.choices, default=BreachStep.NONE)

    class Meta:
        ordering = ["due_at", "-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["new", "open", "waiting_on_customer", "monitoring", "resolved", "closed"]
                ),
                name="case_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(priority__in=["low", "normal", "high", "urgent"]),
                name="case_priority_valid",
            ),
        ]
        indexes = [
            # The desk queues (cases.selectors.case_queue): cases being worked, by the queue's
            # sort key (next deadline, no-clock cases last) then newest, for all departments,
            # one department, and one assignee. The expression must match selectors.queue_due().
            models.Index(
                Coalesce("due_at", Value(QUEUE_NO_DUE)),
                F("id").desc(),
                name="case_queue_due_idx",
                condition=models.Q(status__in=QUEUE_WORK_STATUSES),
            ),
            models.Index(
                F("department"),
                Coalesce("due_at", Value(QUEUE_NO_DUE)),
                F("id").desc(),
                name="case_dept_queue_idx",
                condition=models.Q(status__in=QUEUE_WORK_STATUSES),
            ),
            models.Index(
                F("assignee"),
                Coalesce("due_at", Value(QUEUE_NO_DUE)),
                F("id").desc(),
                name="case_assignee_queue_idx",
                condition=models.Q(status__in=QUEUE_WORK_STATUSES),
            ),
            # The SLA sweep: running clocks only, by the moment they turn at risk / breached.
            models.Index(
                fields=["at_risk_at"],
                name="case_sla_risk_sweep_idx",
                condition=models.Q(status__in=["new", "open"], sla_state="ok"),
            ),
            models.Index(
                fields=["due_at"],
                name="case_sla_breach_sweep_idx",
                condition=models.Q(status__in=["new", "open"], sla_state__in=["ok", "at_risk"]),
            ),
            # The breach ladder: breached cases of a department whose next step may be due.
            models.Index(
                fields=["department", "due_at"],
                name="case_sla_ladder_idx",
                condition=models.Q(status__in=["new", "open"], sla_state="breached", breach_step__lt=3),
            ),
            # The supervisor board (selectors.board_department_rows, board_agent_rows): open
            # work counted per department and per assignee from the index alone.
            models.Index(
                fields=[
                    "department",
                    "assignee",
                    "sla_state",
                    "status",
                    "first_inbound_at",
                    "last_inbound_at",
                    "last_outbound_at",
                ],
                name="case_board_idx",
                condition=models.Q(status__in=QUEUE_WORK_STATUSES),
            ),
            # Ingest: the customer's most recent case (reopen window).
            models.Index(fields=["customer", "-last_inbound_at"], name="case_customer_recent_idx"),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class Message(models.Model):
    """One entry of a case's timeline: a customer post, our reply, a call, an internal note.

    Outbound messages are also the outbox: ``delivery_state`` follows them from queued
    to sent or failed.
    """

    class Direction(models.TextChoices):
        IN = "in", "From customer"
        OUT = "out", "To customer"
        NOTE = "note", "Internal note"

    class Kind(models.TextChoices):
        POST = "post", "Public post"
        DM = "dm", "Direct message"
        COMMENT = "comment", "Comment"
        EMAIL = "email", "E-mail"
        CALL = "call", "Phone call"
        NOTE = "note", "Internal note"

    class Delivery(models.TextChoices):
        NONE = "", "—"
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        READ = "read", "Read"
        FAILED = "failed", "Failed"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="messages")
    channel = models.ForeignKey(
        "connectors.Channel", null=True, blank=True, on_delete=models.PROTECT, related_name="messages"
    )
    # The customer's identity that wrote (inbound) or was written to (outbound).
    identity = models.ForeignKey(
        "customers.Identity", null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    # The agent who wrote an outbound message or note.
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    direction = models.CharField(max_length=8, choices=Direction.choices)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    is_public = models.BooleanField(default=False)
    # The platform's id of this message (tweet id, mid, wamid, Message-ID, CallSid).
    external_id = models.CharField(max_length=255, blank=True)
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    # The platform id this message answers, kept even when we never saw the parent.
    in_reply_to_external_id = models.CharField(max_length=255, blank=True)
    # A conversation key the platform gives (e-mail thread root, Messenger thread...).
    thread_key = models.CharField(max_length=255, blank=True)
    subject = models.CharField(max_length=255, blank=True)
    text = models.TextField(blank=True)
    # Sanitized HTML (e-mail); never rendered unsanitized.
    html = models.TextField(blank=True)
    # E-mail: the full text including quoted history, trimmed from ``text``.
    quoted_text = models.TextField(blank=True)
    call_duration = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds")
    recording_url = models.URLField(max_length=500, blank=True)
    delivery_state = models.CharField(
        max_length=16, choices=Delivery.choices, default=Delivery.NONE, blank=True
    )
    delivery_error = models.TextField(blank=True)
    send_attempts = models.PositiveSmallIntegerField(default=0)
    # When a queued message's next try is due (null: now). The outbox sweep re-queues a
    # message whose try is long overdue: its task was lost with the broker.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Sent with the request where the platform supports idempotency, so a retry never double-posts.
    idempotency_key = models.UUIDField(default=uuid.uuid4, editable=False)
    # Triage's breakdown for inbound messages (sentiment, intent, reach, score).
    triage = models.JSONField(default=dict, blank=True)
    # When the platform says it was written; ``created_at`` is when we stored it.
    sent_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sent_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_id"],
                condition=~models.Q(external_id=""),
                name="message_unique_channel_external_id",
            ),
            models.CheckConstraint(
                condition=models.Q(direction__in=["in", "out", "note"]), name="message_direction_valid"
            ),
        ]
        indexes = [
            # The case timeline, in time order.
            models.Index(fields=["case", "sent_at", "id"], name="message_timeline_idx"),
            # Threading: find the case of a conversation key on a channel.
            models.Index(
                fields=["channel", "thread_key"],
                name="message_thread_idx",
                condition=~models.Q(thread_key=""),
            ),
            # E-mail threading by Message-ID across the company's mailboxes.
            models.Index(
                fields=["external_id"], name="message_external_id_idx", condition=~models.Q(external_id="")
            ),
            # Surge detection: a channel's customer messages per time window.
            models.Index(
                fields=["channel", "sent_at"],
                name="message_channel_inbound_idx",
                condition=models.Q(direction="in"),
            ),
            # Reply-before-parent: replies whose parent we had not seen yet, found by the
            # parent's platform id when it arrives.
            models.Index(
                fields=["in_reply_to_external_id"],
                name="message_orphan_reply_idx",
                condition=models.Q(reply_to__isnull=True) & ~models.Q(in_reply_to_external_id=""),
            ),
            # The outbox sweep: messages still waiting to be sent.
            models.Index(
                fields=["created_at"], name="message_outbox_idx", condition=models.Q(delivery_state="queued")
            ),
            # The search box's message results, newest first (cases.search): a common word is
            # read in this order and stops at a page. The full-text GIN index over the text
            # (message_text_search_idx, cases.fulltext) is made by migrations, PostgreSQL only.
            models.Index(fields=["-sent_at", "-id"], name="message_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.case_id}/{self.pk} {self.direction} {self.kind}"

    @property
    def is_note(self) -> bool:
        return self.direction == self.Direction.NOTE


class Attachment(models.Model):
    """A file that came with (or was sent with) a message."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to="attachments/%Y/%m/", blank=True)
    # Where the platform hosts it, when we have not downloaded it (yet).
    external_url = models.URLField(max_length=1000, blank=True)
    filename = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=255, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    # E-mail inline parts referenced by cid: in the HTML.
    content_id = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.filename or self.external_url or f"Attachment #{self.pk}"


class CaseEvent(models.Model):
    """One change to a case, with who made it and why: the audit trail and the basis of reports."""

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        MESSAGE_IN = "message_in", "Customer wrote"
        MESSAGE_OUT = "message_out", "Agent replied"
        NOTE = "note", "Note added"
        CALL = "call", "Call logged"
        ASSIGNED = "assigned", "Assigned"
        CLAIMED = "claimed", "Claimed"
        UNASSIGNED = "unassigned", "Unassigned"
        TRANSFERRED = "transferred", "Transferred"
        ESCALATED = "escalated", "Escalated"
        HANDED_BACK = "handed_back", "Handed back"
        ACCEPTED = "accepted", "Hand-over accepted"
        STATUS = "status", "Status changed"
        PRIORITY = "priority", "Priority changed"
        CATEGORY = "category", "Category changed"
        SLA = "sla", "Service promise state changed"
        MERGED = "merged", "Merged"
        SPLIT = "split", "Split off"
        DELIVERY = "delivery", "Delivery state changed"
        DRAFT_TAKEN = "draft_taken", "Reply taken over"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="events")
    # Null for the system (webhooks, sweeps, triage).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="case_events"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=False)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["case", "created_at"], name="caseevent_case_idx"),
            # Reports: events of a kind over a period.
            models.Index(fields=["kind", "created_at"], name="caseevent_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.case_id} {self.kind} at {self.created_at:%Y-%m-%d %H:%M}"


def default_intent_keywords() -> dict[str, list[str]]:
    """Phrases triage looks for, per intent; admins edit the list on TriageSettings."""
    return {
        "cancel": ["cancel", "cancelling", "canceling", "close my account", "switching to", "unsubscribe"],
        "refund": ["refund", "money back", "chargeback", "charged twice", "overcharged", "compensation"],
        "outage": ["outage", "is down", "are down", "went down", "not working", "no service", "no signal"],
        "legal": ["lawyer", "solicitor", "legal action", "sue", "court", "ombudsman", "trading standards"],
        "safety": ["fire", "smoke", "sparks", "injured", "injury", "unsafe", "dangerous", "electric shock"],
    }


def default_monitor_categories() -> list[str]:
    return ["rant", "praise"]


class TriageSettings(models.Model):
    """How triage scores customer messages and which ones it sends to monitoring.

    The row with the lowest id is used; without any row the field defaults apply, so
    a fresh install triages sensibly before an admin changes anything.
    """

    # {"refund": ["refund", "money back"], ...}: whole-word, case-insensitive phrases.
    intent_keywords = models.JSONField(default=default_intent_keywords, blank=True)
    # Categories that go to monitoring instead of the answer queue when the author's reach is low.
    monitor_categories = models.JSONField(default=default_monitor_categories, blank=True)
    # "Low reach": fewer followers than this, not verified, not a VIP customer.
    monitor_max_followers = models.PositiveIntegerField(default=1000)
    # A case in monitoring with no customer message for this many days is closed.
    monitor_quiet_days = models.PositiveSmallIntegerField(default=7)
    # Customer messages in this many days before this one count as repeat contact.
    repeat_window_days = models.PositiveSmallIntegerField(default=3)
    # Surge: customer messages on a channel in one window, against the mean of the
    # windows of the baseline period before it.
    surge_window_minutes = models.PositiveSmallIntegerField(default=5)
    surge_baseline_hours = models.PositiveSmallIntegerField(default=24)
    surge_factor = models.DecimalField(max_digits=4, decimal_places=1, default=4)
    surge_min_mentions = models.PositiveIntegerField(default=20)

    class Meta:
        verbose_name = "triage settings"
        verbose_name_plural = "triage settings"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    surge_window_minutes__gt=0, surge_baseline_hours__gt=0, surge_factor__gt=0
                ),
                name="triagesettings_surge_positive",
            ),
        ]

    def __str__(self) -> str:
        return "Triage settings"

    @classmethod
    def current(cls) -> TriageSettings:
        """The settings in force: the saved row, or the defaults when there is none."""
        return cls.objects.order_by("id").first() or cls()


class Incident(models.Model):
    """A surge of customer messages on one channel: many people writing about one thing at once.

    Cases found in the surge are linked here; each stays its own case. A channel has at
    most one open incident, so a long burst extends it instead of opening more.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    channel = models.ForeignKey("connectors.Channel", on_delete=models.PROTECT, related_name="incidents")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    title = models.CharField(max_length=255, blank=True)
    # The window that set it off, its message count and the baseline it beat.
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    mention_count = models.PositiveIntegerField()
    baseline = models.FloatField()
    cases = models.ManyToManyField(Case, blank=True, related_name="incidents")
    detected_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Who closed it and what they wrote then (what happened, what was done), for the record.
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    close_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-detected_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel"], condition=models.Q(status="open"), name="incident_one_open_per_channel"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["open", "closed"]), name="incident_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Incident on {self.channel} at {self.window_start:%Y-%m-%d %H:%M}"


# Placeholders a canned reply may use; cases.canned fills them from the case and the agent.
CANNED_PLACEHOLDERS = ("customer_name", "reference", "agent_name")


class CannedReply(models.Model):
    """A prepared answer agents insert into a reply and edit before sending.

    ``body`` may use the placeholders in ``CANNED_PLACEHOLDERS`` written in braces
    (``{customer_name}``); they are filled when the agent inserts the reply.
    """

    title = models.CharField(max_length=120)
    body = models.TextField(help_text="Placeholders: {customer_name}, {reference}, {agent_name}.")
    # Empty: offered to every department.
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.CASCADE, related_name="canned_replies"
    )
    # Empty: offered on every platform; else only when replying on this one.
    channel_kind = models.CharField(
        max_length=16,
        blank=True,
        choices=[
            ("x", "X"),
            ("facebook", "Facebook"),
            ("instagram", "Instagram"),
            ("whatsapp", "WhatsApp"),
            ("email", "E-mail"),
            ("phone", "Phone"),
        ],
        help_text="Leave empty to offer it on every channel.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "id"]
        verbose_name_plural = "canned replies"
        constraints = [
            models.UniqueConstraint(
                fields=["department", "title"],
                condition=models.Q(department__isnull=False),
                name="cannedreply_unique_title_per_department",
            ),
            models.UniqueConstraint(
                fields=["title"],
                condition=models.Q(department__isnull=True),
                name="cannedreply_unique_title_everywhere",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def clean(self):
        from django.core.exceptions import ValidationError

        from .canned import unknown_placeholders

        unknown = unknown_placeholders(self.body)
        if unknown:
            known = ", ".join("{" + name + "}" for name in CANNED_PLACEHOLDERS)
            raise ValidationError(
                {
                    "body": f"Unknown placeholder {', '.join(unknown)}. Use {known}; write {{{{ and }}}} for braces."
                }
            )
