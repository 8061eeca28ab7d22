"""Saved views: an agent's own named queue filters."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SavedView(models.Model):
    """A queue filter an agent saved under a name, to open again in one click.

    ``query`` is the queue's query string (``view=department&priority=high``), checked by the
    queue's own filter form when the view is opened; a view is its owner's alone.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views")
    name = models.CharField(max_length=80)
    query = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="savedview_unique_name_per_user"),
        ]

    def __str__(self) -> str:
        return self.name
