"""The case: one customer's conversation across channels, with one owner and one set of clocks."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from django.conf import settings
from django.db import models
from django.db.models import F, Value
from django.db.models.functions import Coalesce

from .organisation import Department

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
