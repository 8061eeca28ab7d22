"""What each desk user chose for themselves: desktop notifications, their sound, the theme."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class DeskPreferences(models.Model):
    """One user's desk comforts. A user without a row has the defaults below.

    Read by the desk socket when it connects (which notifications to push, and with the
    theme and sound in its ``hello``), and by the "My settings" page.
    """

    class Theme(models.TextChoices):
        SYSTEM = "system", "Same as the system"
        LIGHT = "light", "Light"
        DARK = "dark", "Dark"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="desk_preferences"
    )
    # Desktop notifications per kind of news; shown only once the browser has the user's permission.
    notify_assigned = models.BooleanField(default=True)  # a case assigned to me by someone else
    notify_at_risk = models.BooleanField(default=True)  # a case of mine turned at risk
    notify_replies = models.BooleanField(default=True)  # a customer wrote on a case I own or follow
    sound = models.BooleanField(default=False)  # play a short chime with each notification
    theme = models.CharField(max_length=8, choices=Theme.choices, default=Theme.SYSTEM)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "desk preferences"
        verbose_name_plural = "desk preferences"

    def __str__(self) -> str:
        return f"Desk preferences of {self.user}"
