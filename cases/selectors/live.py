"""What live updates read: one case or message to push, and whether a page missed anything.

Pushes reload one case (``live_case``) or one timeline entry (``live_message``) as the
pages load them; a reconnecting page compares the newest case event it was rendered with
(``live_seq``) to ask whether its queue or case changed since.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q

from ..models import Case, CaseEvent, Incident, Message
from .queue import _work_scope
from .timeline import _attachment_link, _with_links


def live_case(*, case_id: int) -> Case | None:
    """One case with what its page header shows; for live pushes (no permission check: callers do)."""
    return (
        Case.objects.select_related("customer", "department", "assignee", "last_channel", "origin_channel")
        .filter(pk=case_id)
        .first()
    )


def live_message(*, message_id: int) -> Message | None:
    """One timeline entry as :func:`case_page_timeline` loads it."""
    message = (
        Message.objects.filter(pk=message_id)
        .select_related("channel", "identity", "author", "case__customer")
        .prefetch_related("attachments")
        .first()
    )
    if message is None:
        return None
    links = [
        _attachment_link(
            pk=a.pk, file=a.file.name, external_url=a.external_url, filename=a.filename, size=a.size
        )
        for a in message.attachments.all()
    ]
    return _with_links(message, links)


def live_seq() -> int:
    """The newest case event's id: a page remembers it to ask later whether it missed anything."""
    return CaseEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def queue_changed_since(*, user, seq: int) -> bool:
    """Whether any of ``user``'s work cases has an event newer than ``seq`` (a page's render)."""
    return (
        CaseEvent.objects.filter(id__gt=seq)
        .filter(Q(case__in=Case.objects.filter(_work_scope(user)).values("pk")))
        .exists()
    )


def case_changed_since(*, case_id: int, at: datetime) -> bool:
    """Whether ``case`` has an event or a message stored after ``at`` (a page's render)."""
    return (
        CaseEvent.objects.filter(case_id=case_id, created_at__gt=at).exists()
        or Message.objects.filter(case_id=case_id, created_at__gt=at).exists()
    )


def incident_departments(*, incident_id: int) -> dict:
    """An incident's channel, its department and the number of cases linked so far."""
    return (
        Incident.objects.filter(pk=incident_id)
        .values("pk", "title", "mention_count", "channel__name", "channel__kind", "channel__department_id")
        .first()
    ) or {}
