"""Triage's settings and the incidents its surge detection opens."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .case import Case


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

    class Kind(models.TextChoices):
        SURGE = "surge", "Surge"
        KNOWN_CUSTOMERS = "known_customers", "Known customers"

    channel = models.ForeignKey("connectors.Channel", on_delete=models.PROTECT, related_name="incidents")
    # What opened it: a surge of mentions, or a flood from VIP / verified / high-reach customers.
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SURGE)
    # Set by an overlapping monitoring alert or a known-customer flood; pages who is on call.
    is_urgent = models.BooleanField(default=False)
    urgent_reason = models.CharField(max_length=255, blank=True)
    alerts = models.ManyToManyField("cases.MonitoringAlert", blank=True, related_name="incidents")
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
            models.CheckConstraint(
                condition=models.Q(kind__in=["surge", "known_customers"]), name="incident_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Incident on {self.channel} at {self.window_start:%Y-%m-%d %H:%M}"
