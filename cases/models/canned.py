"""Prepared answers agents insert into replies."""

from __future__ import annotations

from django.db import models

from .organisation import Department

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

        from ..canned import unknown_placeholders

        unknown = unknown_placeholders(self.body)
        if unknown:
            known = ", ".join("{" + name + "}" for name in CANNED_PLACEHOLDERS)
            raise ValidationError(
                {
                    "body": f"Unknown placeholder {', '.join(unknown)}. Use {known}; write {{{{ and }}}} for braces."
                }
            )
