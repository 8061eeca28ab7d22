"""Service promises per channel and the business calendars their clocks run on."""

from __future__ import annotations

from django.db import models


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
