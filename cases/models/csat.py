"""Customer satisfaction: the one question asked after a case is resolved."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .case import Case
from .organisation import Department


class SatisfactionSurvey(models.Model):
    """A case's survey: sent once on the channel the customer last used, answered (or not)
    through a signed link with a rating from 1 to 5 and an optional comment.

    One per case (a case is never asked twice). The department and agent are those the case
    had when it was resolved, so reports credit who did the work even after a later transfer.
    """

    case = models.OneToOneField(Case, on_delete=models.CASCADE, related_name="survey")
    channel = models.ForeignKey(
        "connectors.Channel", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="surveys")
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="surveys"
    )
    # The outbound message that carried the question.
    message = models.ForeignKey(
        "cases.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sent_at = models.DateTimeField()
    rating = models.PositiveSmallIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-sent_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(rating__isnull=True) | models.Q(rating__gte=1, rating__lte=5),
                name="survey_rating_1_to_5",
            ),
        ]
        indexes = [
            # The CSAT report (cases.csat.report): surveys sent over a period.
            models.Index(fields=["sent_at"], name="survey_sent_idx"),
            # Reports: answered surveys over a period.
            models.Index(
                fields=["answered_at"], name="survey_answered_idx", condition=models.Q(rating__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"Survey of {self.case_id}"
