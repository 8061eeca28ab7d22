"""Urgent signals and connector health: monitoring alerts from outside, known-customer floods,
who is on call and the pages sent to them, and the health of each channel's traffic."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AlertSource(models.Model):
    """A monitoring system that posts its alerts to ``/webhooks/alerts/<slug>/``.

    The shared secret is not stored: ``secret_env`` names the environment variable that
    holds it (as channels do). Requests carry either an HMAC-SHA256 of the body made with it
    (``X-Caseline-Signature: sha256=<hex>``) or the secret itself as a bearer token, which
    is all Prometheus Alertmanager can send.
    """

    class Format(models.TextChoices):
        ALERTMANAGER = "alertmanager", "Prometheus Alertmanager (webhook version 4)"
        GENERIC = "generic", "Generic JSON"

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    format = models.CharField(max_length=16, choices=Format.choices, default=Format.ALERTMANAGER)
    secret_env = models.CharField(max_length=120, help_text="Environment variable holding the shared secret.")
    # Alerts of this source are matched only with incidents on this department's channels
    # (blank: every department's).
    department = models.ForeignKey(
        "cases.Department", null=True, blank=True, on_delete=models.SET_NULL, related_name="alert_sources"
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MonitoringAlert(models.Model):
    """One technical alert as its source last reported it (firing, then resolved)."""

    class Status(models.TextChoices):
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"

    source = models.ForeignKey(AlertSource, on_delete=models.CASCADE, related_name="alerts")
    # Alertmanager's fingerprint, or the generic shape's "id": the same alert across reports.
    fingerprint = models.CharField(max_length=255)
    status = models.CharField(max_length=8, choices=Status.choices)
    title = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    severity = models.CharField(max_length=32, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    generator_url = models.URLField(max_length=1000, blank=True)
    # The stored delivery that last reported it.
    event = models.ForeignKey(
        "connectors.InboundEvent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    received_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-starts_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "fingerprint"], name="monitoringalert_unique_fingerprint"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["firing", "resolved"]), name="monitoringalert_status_valid"
            ),
        ]
        indexes = [
            # Matching: the alerts firing now.
            models.Index(
                fields=["starts_at"], name="monitoringalert_firing_idx", condition=models.Q(status="firing")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title or self.fingerprint} ({self.status})"


class KnownCustomerRule(models.Model):
    """A department's flood rule: ``count`` messages from VIP customers or verified / high-reach
    identities within ``window_minutes`` on one of its channels is an urgent signal."""

    department = models.OneToOneField(
        "cases.Department", on_delete=models.CASCADE, related_name="known_customer_rule"
    )
    enabled = models.BooleanField(default=True)
    count = models.PositiveSmallIntegerField(default=3)
    window_minutes = models.PositiveSmallIntegerField(default=10)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(count__gt=0, window_minutes__gt=0), name="knowncustomerrule_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"Known-customer rule of {self.department}"


class OnCallShift(models.Model):
    """Who is on call for a department from ``starts_at`` to ``ends_at`` (the end excluded)."""

    department = models.ForeignKey("cases.Department", on_delete=models.CASCADE, related_name="oncall_shifts")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oncall_shifts")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="oncallshift_ends_after_start"
            ),
        ]
        indexes = [
            # Who is on call now: a department's shifts ending after now.
            models.Index(fields=["department", "ends_at"], name="oncallshift_dept_end_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user} on call for {self.department}"


class Page(models.Model):
    """An urgent signal sent to the person on call; one per incident and person."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pages")
    incident = models.ForeignKey("cases.Incident", on_delete=models.CASCADE, related_name="pages")
    reason = models.CharField(max_length=255)
    sent_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-sent_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "user"], name="page_once_per_incident_user"),
        ]

    def __str__(self) -> str:
        return f"Page to {self.user} for incident {self.incident_id}"


class ChannelHealthAlert(models.Model):
    """Something wrong with a channel's traffic, open until the traffic is normal again."""

    class Kind(models.TextChoices):
        SILENT = "silent", "No inbound messages"
        SIGNATURES = "signatures", "Repeated signature failures"
        OUTBOUND = "outbound", "Outbound sends failing"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLEARED = "cleared", "Cleared"

    channel = models.ForeignKey("connectors.Channel", on_delete=models.CASCADE, related_name="health_alerts")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    # What was measured when it opened (last inbound, the usual gap, counts...).
    detail = models.CharField(max_length=255, blank=True)
    opened_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "kind"],
                condition=models.Q(status="open"),
                name="channelhealth_one_open_per_kind",
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=["silent", "signatures", "outbound"]),
                name="channelhealth_kind_valid",
            ),
        ]
        indexes = [
            # The board and the health pages: open alerts.
            models.Index(
                fields=["channel"], name="channelhealth_open_idx", condition=models.Q(status="open")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.channel_id} ({self.status})"
