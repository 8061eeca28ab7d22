"""Template helpers of the agent desk: labels, countdowns, durations, safe e-mail HTML, queue rows,
and a form renderer that prints plain inputs and selects without templates."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from functools import lru_cache

import nh3
from django import template
from django.forms.renderers import DjangoTemplates
from django.urls import reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeData, SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.timezone import localtime
from django.utils.translation import gettext

from cases import department_clock, permissions, selectors
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
        "name": selectors.user_name(user),
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
    return ago_text(value, datetime.now(UTC))


def ago_text(value: datetime, now: datetime) -> str:
    seconds = int((now - value).total_seconds())
    if seconds < 60:
        return "now"
    if seconds < 3_600:
        return f"{seconds // 60}m ago"
    return f"{span_text(seconds)} ago"


@register.simple_tag
def countdown_time(due: datetime | None, now: datetime | None = None) -> str:
    """A countdown that desk.js keeps ticking; the server's text is right at render time."""
    if due is None:
        return ""
    return mark_safe(_countdown_html(due, now or datetime.now(UTC)))  # built from escaped parts


def _countdown_html(due: datetime, now: datetime) -> str:
    # iso() and countdown_text() print digits, letters and punctuation only: nothing to escape.
    at = iso(due)
    overdue = " is-overdue" if due <= now else ""
    return (
        f'<time class="countdown{overdue}" datetime="{at}" data-due="{at}" title="Due {_text(stamp(due))}">'
        f"{countdown_text(due, now)}</time>"
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
    return "" if user is None else selectors.user_name(user)


@register.simple_tag
def queue_key(case: Case) -> str:
    """The row's place in the queue order, for desk.js to slot pushed rows in."""
    return selectors.queue_key(case.due_at, case.pk)


# --- Queue rows ----------------------------------------------------------------------------
# A queue page shows 50 rows and every live push renders one: the row is built here in
# Python (about a seventh of what the same markup costs as an included Django template).
# templates/cases/partials/queue_row.html is this tag and nothing else, so pages and pushes
# print the same bytes. Every value is escaped as {{ value }} would escape it.


def _text(value) -> str:
    """``value`` as ``{{ value }}`` prints it in an HTML template (plain text escaped)."""
    return html.escape(str(value))


def _badge(css: str, value, label) -> str:
    return f'<span class="badge {css}-{_text(value)}">{_text(label)}</span>'


def _badges(css: str, choices) -> dict[str, str]:
    return {value: _badge(css, value, label) for value, label in choices}


# The fixed parts of a row, printed once per value instead of once per row.
_STATUS_BADGES = _badges("st", Case.Status.choices)
_PRIORITY_BADGES = _badges("pr", Case.Priority.choices)
_SLA_BADGES = _badges("sla", Case.SlaState.choices)
_CHANNEL_BADGES = {kind: str(channel_badge(kind)) for kind in CHANNEL_NAMES}
_NO_VALUE = '<span class="faint">—</span>'


def _time_cell(value: datetime | None, now: datetime) -> str:
    if value is None:
        return _NO_VALUE
    return f'<time datetime="{iso(value)}" title="{_text(stamp(value))}">{ago_text(value, now)}</time>'


def queue_row_html(row: selectors.QueueRow, now: datetime | None = None) -> SafeString:
    """One queue row (``<tr>`` ... ``</tr>``) from :class:`cases.selectors.QueueRow` values."""
    now = now or datetime.now(UTC)
    reference = _text(row.reference)
    href = _text(case_url(row.reference))
    if row.subject:
        title = f'\n      <a class="subject" href="{href}">{_text(row.subject)}</a>\n    '
    elif row.opening_words:
        words = _text(Truncator(row.opening_words).words(12, truncate=" …"))
        title = f'\n      <a class="subject is-snippet" href="{href}">{words}</a>\n    '
    else:
        title = ""
    vip = ' <span class="badge vip">VIP</span>' if row.customer_is_vip else ""
    label = row.last_identity_label
    handle = f'<span class="handle">{_text(label)}</span>' if label else ""
    kind = row.last_channel_kind
    channel = _NO_VALUE if kind is None else (_CHANNEL_BADGES.get(kind) or channel_badge(kind))
    # A value outside the choices prints as itself, as get_FOO_display() does.
    status = _STATUS_BADGES.get(row.status) or _badge("st", row.status, row.status)
    priority = _PRIORITY_BADGES.get(row.priority) or _badge("pr", row.priority, row.priority)
    sla = _SLA_BADGES.get(row.sla_state) or _badge("sla", row.sla_state or "none", row.sla_state)
    countdown = "" if row.due_at is None else _countdown_html(row.due_at, now)
    assignee = _text(row.assignee) if row.assignee_id is not None else '<span class="faint">Unassigned</span>'
    if row.awaiting_acceptance:  # handed to its department and not accepted yet (handoff_selectors)
        status += f' <span class="badge handoff-wait">{_text(gettext("Awaiting acceptance"))}</span>'
    department_badge = _department_clock_badge(row, now)
    # selectors.queue_key() prints digits and a dot only.
    return mark_safe(  # every value above is escaped, or fixed markup
        f'<tr id="case-row-{row.id}" data-case="{reference}" data-key="{selectors.queue_key(row.due_at, row.id)}">\n'
        f'  <td class="case-cell" data-label="Case">\n'
        f'    <a class="ref" href="{href}">{reference}</a>\n'
        f"    {title}\n"
        f"  </td>\n"
        f'  <td data-label="Customer">\n'
        f'    <a class="cust" href="{_text(customer_url(row.customer_id))}">{_text(row.customer)}</a>{vip}\n'
        f"    {handle}\n"
        f"  </td>\n"
        f'  <td data-label="Channel">{channel}</td>\n'
        f'  <td data-label="Status">{status}</td>\n'
        f'  <td data-label="Priority">{priority}</td>\n'
        f'  <td data-label="Promise"><span class="sla">{sla}{countdown}</span></td>\n'
        f'  <td data-label="Assignee">{assignee}<span class="handle">{_text(row.department)}</span>'
        f"{department_badge}</td>\n"
        f'  <td data-label="Customer wrote">{_time_cell(row.last_inbound_at, now)}</td>\n'
        f"</tr>"
    )


# The department clock's badge (cases.department_clock): near or over the handling target.
_DEPARTMENT_BADGES = {
    "near": ("sla-at_risk", "Near dept. target"),
    "over": ("sla-breached", "Over dept. target"),
}


def _department_clock_badge(row: selectors.QueueRow, now: datetime) -> str:
    state = department_clock.target_state(
        since=row.department_since, target_minutes=row.department_target_minutes, now=now
    )
    if state not in _DEPARTMENT_BADGES:
        return ""
    css, label = _DEPARTMENT_BADGES[state]
    with_us = span_text((now - row.department_since).total_seconds())
    title = gettext("With %(department)s for %(length)s; its handling target is %(target)s.") % {
        "department": row.department,
        "length": with_us,
        "target": span_text(row.department_target_minutes * 60),
    }
    return (
        f' <span class="badge {css} dept-clock" data-dept-clock="{state}" title="{_text(title)}">'
        f"{_text(gettext(label))}</span>"
    )


def _as_row(case) -> selectors.QueueRow:
    return case if isinstance(case, selectors.QueueRow) else selectors.queue_row(case)


@register.simple_tag(name="queue_row")
def queue_row_tag(case) -> SafeString:
    """The queue row of ``case``: a :class:`cases.selectors.QueueRow`, or a Case loaded as
    ``selectors.live_queue_rows`` loads it (templates/cases/partials/queue_row.html)."""
    return queue_row_html(_as_row(case))


@register.simple_tag
def queue_rows(cases) -> SafeString:
    """Every row of a queue page, each followed by a newline as the included partial prints it."""
    now = datetime.now(UTC)
    return mark_safe("".join(f"{queue_row_html(_as_row(case), now)}\n" for case in cases))  # rows are safe


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


# --- Form widgets ----------------------------------------------------------------------------
# Django renders every widget, and every <option> of a select, through a template: the
# queue's five filter controls cost more than its fifty rows. QuickWidgetRenderer prints
# the plain <input> and <select> widgets in Python, byte for byte as Django's own templates
# (django/forms/templates/django/forms/widgets/{input,select,select_option,attrs}.html) print
# them, and hands anything else (option groups, other widgets) to those templates.


def _attr_text(value) -> str:
    """``{{ value|stringformat:'s' }}`` in a widget template."""
    text = "%s" % (str(value) if isinstance(value, tuple) else value)
    return text if isinstance(value, SafeData) else html.escape(text)


def _widget_attrs(attrs: dict) -> str:
    """django/forms/widgets/attrs.html"""
    return "".join(
        f" {conditional_escape(name)}"
        if value is True
        else f' {conditional_escape(name)}="{_attr_text(value)}"'
        for name, value in attrs.items()
        if value is not False
    )


def _input_widget(widget: dict) -> str | None:
    value = widget["value"]
    shown = "" if value is None else f' value="{_attr_text(value)}"'
    return (
        f'<input type="{conditional_escape(widget["type"])}" name="{conditional_escape(widget["name"])}"'
        f"{shown}{_widget_attrs(widget['attrs'])}>"
    )


_OPTION_TEMPLATE = "django/forms/widgets/select_option.html"


def _select_widget(widget: dict) -> str | None:
    parts = [f'<select name="{conditional_escape(widget["name"])}"{_widget_attrs(widget["attrs"])}>']
    for group_name, options, _index in widget["optgroups"]:
        if group_name:
            return None
        for option in options:
            if option["template_name"] != _OPTION_TEMPLATE or not isinstance(option["label"], str):
                return None
            parts.append(
                f'\n  <option value="{_attr_text(option["value"])}"{_widget_attrs(option["attrs"])}>'
                f"{conditional_escape(option['label'])}</option>\n"
            )
    parts.append("\n</select>")
    return "".join(parts)


_QUICK_WIDGETS = {
    "django/forms/widgets/text.html": _input_widget,
    "django/forms/widgets/hidden.html": _input_widget,
    "django/forms/widgets/input.html": _input_widget,
    "django/forms/widgets/select.html": _select_widget,
}


class QuickWidgetRenderer(DjangoTemplates):
    """Django's template form renderer, with plain inputs and selects printed in Python (same bytes)."""

    def render(self, template_name, context, request=None):
        build = _QUICK_WIDGETS.get(template_name)
        printed = build(context["widget"]) if build is not None and "widget" in context else None
        if printed is None:
            return super().render(template_name, context, request=request)
        return printed.strip()


quick_widget_renderer = QuickWidgetRenderer()
