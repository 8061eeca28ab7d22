"""A case's timeline: messages, their attachments, and the audit trail of changes."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from .case import Case


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
            # Channel health: a channel's last reply and its replies of the last hour.
            models.Index(
                fields=["channel", "sent_at"],
                name="message_channel_outbound_idx",
                condition=models.Q(direction="out"),
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
        CSAT = "csat", "Customer rated"

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
