"""A desk user's own comforts: which desktop notifications they get, the chime, the theme.

Reads (``preferences_get``, ``socket_preferences``) and the one write (``preferences_save``).
The desk socket reads ``socket_preferences`` when it connects and again when it is told
``prefs.changed``; the "My settings" page (``cases.preferences_views``) reads and writes.
"""

from __future__ import annotations

from django.db import transaction

from channels_app import groups
from channels_app.publish import publish_on_commit

from . import permissions
from .errors import ServiceError
from .models import QUEUE_WORK_STATUSES, Case, DeskPreferences

# The kinds of news a desktop notification can bring, each with its switch on the model.
NOTIFY_FIELDS = {
    "assigned": "notify_assigned",
    "at_risk": "notify_at_risk",
    "reply": "notify_replies",
}
# Followed cases a socket remembers for reply notifications (the newest first).
MAX_FOLLOWED = 500
# Of those, the cases outside the user's departments whose case groups the socket joins (their
# news reaches no group of the user's otherwise: a case the user handed to another department).
MAX_FOLLOWED_ELSEWHERE = 50
# What a socket knows before it has read the user's preferences.
SOCKET_DEFAULTS = {"notify": [], "sound": False, "theme": "system", "followed": [], "followed_elsewhere": []}


def preferences_get(*, user) -> DeskPreferences:
    """The user's saved preferences, or the defaults (unsaved) when they never saved any. One query."""
    found = DeskPreferences.objects.filter(user=user).first()
    return found if found is not None else DeskPreferences(user=user)


def socket_preferences(*, user) -> dict:
    """What the desk socket needs: the kinds to notify, the chime, the theme, the open cases the
    user follows (for reply notifications) and which of them are outside the user's departments.
    Two queries and the user's memberships (cached on the user); one when reply notifications
    are off."""
    prefs = preferences_get(user=user)
    notify = sorted(kind for kind, field in NOTIFY_FIELDS.items() if getattr(prefs, field))
    followed: list[int] = []
    elsewhere: list[int] = []
    if "reply" in notify:
        rows = (
            Case.objects.filter(followers=user, status__in=QUEUE_WORK_STATUSES)
            .order_by("-pk")
            .values_list("pk", "department_id")[:MAX_FOLLOWED]
        )
        mine = permissions.department_ids(user)
        for pk, department_id in rows:
            followed.append(pk)
            if department_id not in mine and len(elsewhere) < MAX_FOLLOWED_ELSEWHERE:
                elsewhere.append(pk)
    return {
        "notify": notify,
        "sound": prefs.sound,
        "theme": prefs.theme,
        "followed": followed,
        "followed_elsewhere": elsewhere,
    }


@transaction.atomic
def preferences_save(
    *,
    user,
    notify_assigned: bool,
    notify_at_risk: bool,
    notify_replies: bool,
    sound: bool,
    theme: str,
) -> DeskPreferences:
    """Save ``user``'s preferences (creating the row on first save).

    Raises ``ServiceError`` naming ``theme`` for a theme that is not one of the choices. The
    row is locked while it changes; after commit the user's sockets are told
    (``prefs.changed`` to their personal group), so every open tab follows at once.
    """
    if theme not in DeskPreferences.Theme.values:
        choices = ", ".join(DeskPreferences.Theme.values)
        raise ServiceError(f"Theme must be one of {choices}, not '{theme}'.", field="theme")
    prefs, _ = DeskPreferences.objects.select_for_update().get_or_create(user=user)
    prefs.notify_assigned = bool(notify_assigned)
    prefs.notify_at_risk = bool(notify_at_risk)
    prefs.notify_replies = bool(notify_replies)
    prefs.sound = bool(sound)
    prefs.theme = theme
    prefs.save()
    publish_on_commit(
        event={"type": "prefs.changed", "user_id": user.pk, "theme": theme, "sound": prefs.sound},
        groups=[groups.user_group(user.pk)],
    )
    return prefs
