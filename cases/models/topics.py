"""What customers write about, counted per week: the topics job's table and its watermark."""

from __future__ import annotations

from django.db import models

from .case import Case
from .organisation import Department


class TopicWeek(models.Model):
    """How many customer messages (and cases) used a phrase in one ISO week, per channel,
    department and category.

    Written only by the topics job (``cases.topics.services.topics_refresh``), which adds
    each new inbound message once; the topics page reads this table, never the messages.
    Department and category are the case's when the job read the message.
    """

    class Kind(models.TextChoices):
        PHRASE = "phrase", "Phrase"
        # A group of messages alike in meaning (the optional sentence model), named by
        # its most common phrase.
        THEME = "theme", "Theme"

    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.PHRASE)
    phrase = models.CharField(max_length=120)
    # 1, 2 or 3: unigram, bigram, trigram (a theme: its name's).
    words = models.PositiveSmallIntegerField()
    # The Monday of the ISO week, in the desk's time zone.
    week = models.DateField()
    # Null: messages that came in without a channel (logged calls, notes turned messages).
    # No database constraints on the two keys: the job writes hundreds of thousands of cells and
    # a foreign-key trigger per row costs it a quarter of its time; Django's CASCADE still
    # removes a deleted channel's or department's cells.
    channel = models.ForeignKey(
        "connectors.Channel",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
    )
    department = models.ForeignKey(
        Department, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    category = models.CharField(max_length=16, choices=Case.Category.choices, blank=True)
    messages = models.PositiveIntegerField(default=0)
    # Distinct cases: a case writing the phrase twice in one week counts once.
    cases = models.PositiveIntegerField(default=0)
    # Up to EXAMPLES ids of recent messages that used the phrase, newest last.
    examples = models.JSONField(default=list, blank=True)

    EXAMPLES = 3

    class Meta:
        constraints = [
            # One row per cell; two partial constraints as a null channel is a cell of its own
            # (NULLS NOT DISTINCT is PostgreSQL 15's alone). The job upserts on them.
            models.UniqueConstraint(
                fields=["kind", "phrase", "week", "channel", "department", "category"],
                condition=models.Q(channel__isnull=False),
                name="topicweek_unique_cell",
            ),
            models.UniqueConstraint(
                fields=["kind", "phrase", "week", "department", "category"],
                condition=models.Q(channel__isnull=True),
                name="topicweek_unique_cell_no_channel",
            ),
            models.CheckConstraint(
                condition=models.Q(words__gte=1, words__lte=3), name="topicweek_words_1_3"
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=["phrase", "theme"]), name="topicweek_kind_valid"
            ),
        ]
        indexes = [
            # The topics page: this week's and last week's rows, summed per phrase. The drill-down
            # and the sparklines (one phrase's weeks) read the unique cell index.
            models.Index(fields=["kind", "week", "phrase"], name="topicweek_week_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.phrase} ({self.week:%G-W%V}): {self.messages}"


class TopicState(models.Model):
    """The topics job's watermark: the last message it has counted (one row, the lowest id)."""

    # Inbound messages with an id above this have not been counted yet.
    last_message_id = models.BigIntegerField(default=0)
    messages_counted = models.BigIntegerField(default=0)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "topics job state"

    def __str__(self) -> str:
        return f"Topics counted up to message {self.last_message_id}"
