"""Template helpers of the agent desk: labels, countdowns, durations, safe e-mail HTML."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

import nh3
from django import template
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime

from cases import permissions, selectors
from cases.models import Case

register = template.Library()

# Short marks for channel badges; the full name is always printed beside or in a title.
CHANNEL_MARKS = {"x": "X", "facebook": "f", "instagram": "IG", "whatsapp": "WA", "email": "@", "phone": "☎"}
CHANNEL_NAMES = {
    "x": "X",
    "facebook": "Facebook",
    "instagram": "Instagram",
    "whatsapp": "WhatsApp",
    "email": "E-mail",
    "phone": "Phone",
}


@register.simple_tag
def desk_user(user) -> dict:
    """Role and department names for the top bar (one cached query per request)."""
    if not (user and user.is_authenticated):
        return {"role": "", "departments": [], "is_admin": False, "name": ""}
    return {
        "role": permissions.role_of(user),
        "is_admin": permissions.is_admin(user),
        "departments": selectors.user_departments(user=user),
        "name": user.get_full_name() or user.email or user.get_username(),
    }


@register.filter
def channel_mark(kind: str) -> str:
    return CHANNEL_MARKS.get(kind or "", "·")


@register.filter
def channel_name(kind: str) -> str:
    return CHANNEL_NAMES.get(kind or "", "Internal")


@register.filter
def iso(value: datetime | None) -> str:
    """An aware datetime as an ISO 8601 UTC string for ``data-due`` / ``datetime`` attributes."""
    if value is None:
        return ""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def span_text(seconds: int) -> str:
    """A length of time the way agents read it: "2d 3h", "1h 05m", "12m", "4m 09s"."""
    days, rest = divmod(abs(int(seconds)), 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes >= 5:
        return f"{minutes}m"
    return f"{minutes}m {secs:02d}s"


def countdown_text(due: datetime, now: datetime) -> str:
    """How long until (or since) ``due``; static/js/desk.js formats exactly the same way."""
    seconds = int((due - now).total_seconds())
    return f"{span_text(seconds)} overdue" if seconds < 0 else f"in {span_text(seconds)}"


@register.filter
def countdown(due: datetime | None) -> str:
    if due is None:
        return ""
    return countdown_text(due, datetime.now(UTC))


@register.filter
def duration(seconds: int | None) -> str:
    """A call length as mm:ss (h:mm:ss from an hour)."""
    if seconds is None:
        return ""
    hours, rest = divmod(int(seconds), 3_600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


@register.filter
def duration_span(seconds: int | None) -> str:
    """Working time left on a paused clock ("5h 10m")."""
    return "" if seconds is None else span_text(seconds)


@register.filter
def clean_html(html: str) -> str:
    """E-mail HTML, sanitized again at render time so nothing unsanitized is ever marked safe."""
    if not html:
        return ""
    cleaned = nh3.clean(
        html, link_rel="noopener noreferrer nofollow", url_schemes={"http", "https", "mailto"}
    )
    return mark_safe(cleaned)  # only ever nh3 output


@register.simple_tag
def channel_badge(kind: str) -> str:
    """A channel's coloured mark and its name (a tag, not an include: queue rows render many)."""
    return format_html(
        '<span class="ch ch-{}"><span class="ch-mark" aria-hidden="true">{}</span><span class="ch-name">{}</span></span>',
        kind or "note",
        channel_mark(kind),
        channel_name(kind),
    )


@register.simple_tag
def sla_badge(case: Case) -> str:
    return format_html(
        '<span class="badge sla-{}">{}</span>', case.sla_state or "none", case.get_sla_state_display()
    )


@register.filter
def stamp(value: datetime | None) -> str:
    """A moment in the desk's time zone as "24 Nov 2026, 14:05" (cheap: queue rows print many)."""
    if value is None:
        return ""
    local = localtime(value)
    return f"{local.day} {local:%b %Y, %H:%M}"


@register.filter
def ago(value: datetime | None) -> str:
    """How long ago, the way the queue reads it: "now", "12m ago", "3h 05m ago", "2d 4h ago"."""
    if value is None:
        return ""
    seconds = int((datetime.now(UTC) - value).total_seconds())
    if seconds < 60:
        return "now"
    if seconds < 3_600:
        return f"{seconds // 60}m ago"
    return f"{span_text(seconds)} ago"


@register.simple_tag
def countdown_time(due: datetime | None) -> str:
    """A countdown that desk.js keeps ticking; the server's text is right at render time."""
    if due is None:
        return ""
    now = datetime.now(UTC)
    return format_html(
        '<time class="countdown{}" datetime="{}" data-due="{}" title="Due {}">{}</time>',
        " is-overdue" if due <= now else "",
        iso(due),
        iso(due),
        stamp(due),
        countdown_text(due, now),
    )


# A stand-in argument, reversed once per URL name and then replaced (queue rows link many).
_PLACEHOLDER = 918273645


@lru_cache(maxsize=8)
def _url_pattern(name: str) -> str:
    return reverse(name, args=[_PLACEHOLDER])


@register.filter
def case_url(reference: str) -> str:
    """The case page's address."""
    return _url_pattern("desk:case").replace(str(_PLACEHOLDER), str(reference))


@register.filter
def customer_url(customer_id: int) -> str:
    """The customer page's address."""
    return _url_pattern("desk:customer").replace(str(_PLACEHOLDER), str(int(customer_id)))


@register.filter
def person(user) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.email or user.get_username()


@register.simple_tag
def queue_key(case: Case) -> str:
    """The row's place in the queue order, for desk.js to slot pushed rows in."""
    return selectors.queue_key(case.due_at, case.pk)


@register.simple_tag
def others_on_case(presence, user) -> list:
    """The people on the case page other than ``user``."""
    if presence is None:
        return []
    return presence.others(user.pk if user is not None else None)


@register.simple_tag
def lock_state(presence, user) -> dict:
    """Who holds the reply lock, from ``user``'s point of view: free, mine or other."""
    lock = getattr(presence, "lock", None)
    if lock is None:
        return {"state": "free"}
    return {"state": "mine" if user is not None and lock.user_id == user.pk else "other"}


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if mapping else None


@register.filter
def iso_value(value) -> str:
    """A form value that may be a datetime (initial) or the string that was posted."""
    if isinstance(value, datetime):
        return iso(value)
    return value or ""


@register.simple_tag
def waiting_for(since: datetime | None, now: datetime | None = None) -> str:
    """How long a customer has been waiting ("3h 05m"), or a dash."""
    if since is None:
        return mark_safe('<span class="faint">—</span>')
    now = now or datetime.now(UTC)
    seconds = max(0, int((now - since).total_seconds()))
    return format_html(
        '<time class="waiting{}" datetime="{}" title="Since {}">{}</time>',
        " is-long" if seconds >= 3_600 else "",
        iso(since),
        stamp(since),
        span_text(seconds),
    )


@register.simple_tag(takes_context=True)
def form_token(context) -> str:
    """The CSRF field of a form that pages render and live pushes render too.

    A page renders the token; a push (rendered by the socket, without a request) renders
    none, and htmx sends the page's token as a header instead (see base.html).
    """
    token = context.get("csrf_token")
    if not token or str(token) == "NOTPROVIDED":
        return ""
    return format_html('<input type="hidden" name="csrfmiddlewaretoken" value="{}">', token)
