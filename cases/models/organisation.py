"""Departments, who works in them, and the paths cases take between them."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Department(models.Model):
    """A team that owns cases: Social Care, Customer Service, Billing, Technical Support."""

    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    # The department clock's internal target: how long a case may stay with this department
    # (since it arrived there) before the desk warns. Empty: no target.
    handling_target_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="How long a case may stay with this department before the desk warns. Empty: no target.",
    )

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
