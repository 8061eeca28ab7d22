"""The case page and its actions: thin views over cases.selectors (reads) and the services (writes).

Every action is a plain POST form that redirects back to the case (works without
JavaScript); with htmx the same POST answers with the changed regions of the case page,
swapped out of band, so a draft being written elsewhere on the page is never lost.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from . import (
    canned,
    customer_panel,
    department_clock,
    drafts,
    escalation,
    forms,
    permissions,
    selectors,
    services,
    triage,
)
from .errors import ServiceError, StaleDraft
from .models import Case


def _case_or_404(request: HttpRequest, reference: str) -> Case:
    case = selectors.case_for_page(user=request.user, reference=reference)
    if case is None:
        raise Http404("No such case.")
    return case


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _composer_context(
    request: HttpRequest,
    case: Case,
    *,
    identities: list,
    timeline: list,
    reply_form: forms.ReplyForm | None = None,
    call_form: forms.CallForm | None = None,
    note_form: forms.NoteForm | None = None,
    tab: str = "reply",
) -> dict:
    """The reply, note and call forms, with what desk.js needs to guide them."""
    every = _case_channels(case, identities=identities, used={m.channel_id for m in timeline})
    channels = [ch for ch in every if ch.kind != "phone"]
    phone_channel = next((ch for ch in every if ch.kind == "phone"), None)
    if reply_form is None:
        # Answer where the customer last wrote, if we can write there.
        writable = {ch.pk for ch in channels}
        last_in = next(
            (m for m in reversed(timeline) if m.direction == "in" and m.channel_id in writable), None
        )
        default = next(
            (ch for ch in channels if last_in is not None and ch.pk == last_in.channel_id),
            channels[0] if channels else None,
        )
        reply_form = forms.ReplyForm(
            channels=channels,
            identities=identities,
            initial={
                "channel": default.pk if default else None,
                "visibility": "public" if last_in is not None and last_in.is_public else "private",
                "draft_started_at": _now_iso(),
            },
        )
    phones = [identity for identity in identities if identity.kind in ("phone", "whatsapp")]
    replies = canned.canned_for_case(case=case)
    return {
        "reply_form": reply_form,
        "reply_channels": channels,
        "reply_identities": identities,
        "text_limits": services.TEXT_LIMITS,
        "public_kinds": forms.PUBLIC_KINDS,
        "canned_replies": [
            (reply, canned.canned_render(reply=reply, case=case, agent=request.user)) for reply in replies
        ],
        "call_form": call_form
        or forms.CallForm(initial={"direction": "in", "number": phones[0].platform_id if phones else ""}),
        "call_channel": phone_channel,
        "note_form": note_form or forms.NoteForm(),
        "composer_tab": tab,
        "server_now": _now_iso(),
    }


def _case_channels(case: Case, *, identities: list, used: set[int]) -> list:
    """Company channels to write to the customer on: the case's department's, and any the
    conversation already went through (``used``), on platforms where the customer has an identity."""
    used = used | {case.last_channel_id, case.origin_channel_id}
    return [
        ch
        for ch in selectors.reply_channels(identities=identities)
        if ch.department_id == case.department_id or ch.pk in used
    ]


def _page_or_404(request: HttpRequest, reference: str) -> selectors.CasePage:
    page = selectors.case_page(user=request.user, reference=reference)
    if page is None:
        raise Http404("No such case.")
    return page


def _case_context(request: HttpRequest, page: selectors.CasePage, **composer) -> dict:
    case = page.case
    timeline = selectors.case_page_timeline(case=case)
    identities = selectors.customer_identities(customer=case.customer)
    return {
        "case": case,
        "timeline": timeline,
        **customer_panel.panel_context(user=request.user, page=page, identities=identities),
        "presence": drafts.presence_read(case_id=case.pk),
        "department_clock": department_clock.case_department_clock(case=case),
        "rendered_at": _now_iso(),
        **selectors.case_actions_context(user=request.user, case=case, timeline=timeline),
        **_composer_context(request, case, identities=identities, timeline=timeline, **composer),
    }


@login_required
@require_GET
def case_detail(request: HttpRequest, reference: str) -> HttpResponse:
    page = _page_or_404(request, reference)
    return render(request, "cases/case_detail.html", _case_context(request, page))


def _report(request: HttpRequest, error: ServiceError) -> None:
    field = f"{error.field.replace('_', ' ').capitalize()}: " if error.field else ""
    messages.error(request, f"{field}{error.message}")


def _answer(request: HttpRequest, reference: str, *, status: int = 200, composer: dict | None = None):
    """The case again: its changed regions out of band for htmx, else a redirect (or, when a form
    must keep what was typed, the whole page)."""
    if request.htmx:
        page = _page_or_404(request, reference)  # re-read: the service changed it
        context = _case_context(request, page, **(composer or {}))
        context["swap_composer"] = composer is not None
        return render(request, "cases/partials/case_swap.html", context, status=status)
    if composer is not None and status != 200:
        page = _page_or_404(request, reference)
        return render(
            request, "cases/case_detail.html", _case_context(request, page, **composer), status=status
        )
    _case_or_404(request, reference)  # still visible after the change, else 404 as before
    return redirect("desk:case", reference=reference)


def _act(
    request: HttpRequest,
    reference: str,
    form_class: type | None,
    action: Callable[[Case, dict], str],
    form_kwargs: Callable[[Case], dict] | None = None,
) -> HttpResponse:
    """Validate, call one service, report the outcome as a message, then show the case again."""
    case = _case_or_404(request, reference)
    form = form_class(request.POST, **(form_kwargs(case) if form_kwargs else {})) if form_class else None
    status = 200
    if form is not None and not form.is_valid():
        for text in forms.error_messages(form):
            messages.error(request, text)
        status = 400
    else:
        try:
            done = action(case, form.cleaned_data if form is not None else {})
        except ServiceError as error:
            _report(request, error)
            status = error.status
        else:
            messages.success(request, done)
    return _answer(request, reference, status=status)


@login_required
@require_POST
def case_claim(request: HttpRequest, reference: str) -> HttpResponse:
    def claim(case: Case, _data: dict) -> str:
        services.case_claim(case=case, actor=request.user)
        return f"{case.reference} is yours."

    return _act(request, reference, None, claim)


@login_required
@require_POST
def case_assign(request: HttpRequest, reference: str) -> HttpResponse:
    members: list = []

    def assign(case: Case, data: dict) -> str:
        assignee = {user.pk: user for user in members}.get(data["assignee"]) if data["assignee"] else None
        services.case_assign(case=case, assignee=assignee, actor=request.user)
        return f"Assigned to {assignee.get_full_name() or assignee.email}." if assignee else "Unassigned."

    def form_kwargs(case: Case) -> dict:
        members.extend(selectors.department_members(department_id=case.department_id))
        return {"members": members}

    return _act(request, reference, forms.AssignForm, assign, form_kwargs)


@login_required
@require_POST
def case_note(request: HttpRequest, reference: str) -> HttpResponse:
    case = _case_or_404(request, reference)
    form = forms.NoteForm(request.POST)
    if not form.is_valid():
        for text in forms.error_messages(form):
            messages.error(request, text)
        return _answer(request, reference, status=400, composer={"note_form": form, "tab": "note"})
    try:
        services.note_add(case=case, author=request.user, text=form.cleaned_data["text"])
    except ServiceError as error:
        _report(request, error)
        return _answer(request, reference, status=error.status, composer={"note_form": form, "tab": "note"})
    messages.success(request, "Note added.")
    return _answer(request, reference, composer={"tab": "note"})


@login_required
@require_POST
def case_reply(request: HttpRequest, reference: str) -> HttpResponse:
    """Send a reply. A stale draft (the customer wrote, or a colleague replied, since it began) or
    a colleague's reply lock answers 409 with the draft kept; the timeline then shows what is new,
    and the draft's start moves to now, so sending again is a decision made having seen it."""
    case = _case_or_404(request, reference)
    identities = selectors.customer_identities(customer=case.customer)
    used = set(case.messages.exclude(channel=None).values_list("channel_id", flat=True).distinct())
    channels = [ch for ch in _case_channels(case, identities=identities, used=used) if ch.kind != "phone"]
    form = forms.ReplyForm(request.POST, channels=channels, identities=identities)
    if not form.is_valid():
        for text in forms.error_messages(form):
            messages.error(request, text)
        return _answer(request, reference, status=400, composer={"reply_form": form})
    data = form.cleaned_data
    try:
        message = drafts.draft_send(
            case=case,
            author=request.user,
            channel=data["channel_obj"],
            text=data["text"],
            is_public=data["is_public"],
            identity=data["identity_obj"],
            draft_started_at=data.get("draft_started_at"),
        )
    except ServiceError as error:
        _report(request, error)
        if isinstance(error, StaleDraft):
            fresh = request.POST.copy()
            fresh["draft_started_at"] = _now_iso()
            form = forms.ReplyForm(fresh, channels=channels, identities=identities)
            form.is_valid()
            form.stale = True
        return _answer(request, reference, status=error.status, composer={"reply_form": form})
    where = "publicly" if message.is_public else "privately"
    messages.success(request, f"Reply queued {where} on {data['channel_obj']}.")
    return _answer(request, reference, composer={})


@login_required
@require_POST
def case_call(request: HttpRequest, reference: str) -> HttpResponse:
    case = _case_or_404(request, reference)
    form = forms.CallForm(request.POST)
    if not form.is_valid():
        for text in forms.error_messages(form):
            messages.error(request, text)
        return _answer(request, reference, status=400, composer={"call_form": form, "tab": "call"})
    data = form.cleaned_data
    identities = selectors.customer_identities(customer=case.customer)
    phones = _case_channels(case, identities=identities, used=set())
    channel = next((ch for ch in phones if ch.kind == "phone"), None)
    try:
        services.call_log(
            case=case,
            author=request.user,
            direction=data["direction"],
            number=data["number"],
            duration_seconds=data["duration"],
            notes=data["notes"],
            channel=channel,
        )
    except ServiceError as error:
        _report(request, error)
        return _answer(request, reference, status=error.status, composer={"call_form": form, "tab": "call"})
    messages.success(request, "Call logged.")
    return _answer(request, reference, composer={"tab": "call"})


@login_required
@require_POST
def case_status(request: HttpRequest, reference: str) -> HttpResponse:
    def set_status(case: Case, data: dict) -> str:
        changed = services.case_set_status(
            case=case, status=data["status"], actor=request.user, reason=data["reason"]
        )
        return f"Status is now {changed.get_status_display().lower()}."

    return _act(request, reference, forms.StatusForm, set_status)


@login_required
@require_POST
def case_priority(request: HttpRequest, reference: str) -> HttpResponse:
    def set_priority(case: Case, data: dict) -> str:
        changed = services.case_set_priority(
            case=case, priority=data["priority"], actor=request.user, reason=data["reason"]
        )
        return f"Priority is now {changed.get_priority_display().lower()}."

    return _act(request, reference, forms.PriorityForm, set_priority)


@login_required
@require_POST
def case_transfer(request: HttpRequest, reference: str) -> HttpResponse:
    def transfer(case: Case, data: dict) -> str:
        targets = selectors.transfer_departments(user=request.user, case=case)
        target = {department.pk: department for department in targets}[data["to_department"]]
        services.case_transfer(
            case=case, to_department=target, actor=request.user, reason=data["reason"], note=data["note"]
        )
        return f"{case.reference} moved to {target.name}."

    return _act(
        request,
        reference,
        forms.TransferForm,
        transfer,
        lambda case: {"departments": selectors.transfer_departments(user=request.user, case=case)},
    )


@login_required
@require_POST
def case_escalate(request: HttpRequest, reference: str) -> HttpResponse:
    def escalate(case: Case, data: dict) -> str:
        if not permissions.can_work_case(request.user, case):
            raise ServiceError("You cannot escalate this case.", code="not_permitted", field="case")
        moved = escalation.case_escalate(
            case=case, actor=request.user, reason=data["reason"], note=data["note"]
        )
        return f"{moved.reference} escalated to {moved.department.name}."

    return _act(request, reference, forms.EscalateForm, escalate)


@login_required
@require_POST
def case_monitor(request: HttpRequest, reference: str) -> HttpResponse:
    def monitor(case: Case, data: dict) -> str:
        triage.case_monitor(case=case, actor=request.user, reason=data["reason"])
        return "Monitoring only: no answer is owed."

    return _act(request, reference, forms.ReasonForm, monitor)


@login_required
@require_POST
def case_respond(request: HttpRequest, reference: str) -> HttpResponse:
    def respond(case: Case, data: dict) -> str:
        triage.case_respond(case=case, actor=request.user, reason=data["reason"])
        return "Back in the answer queue; the clocks run from now."

    return _act(request, reference, forms.ReasonForm, respond)


@login_required
@require_POST
def case_move_private(request: HttpRequest, reference: str) -> HttpResponse:
    def move(case: Case, data: dict) -> str:
        channel = {ch.pk: ch for ch in selectors.public_channels(case=case)}.get(data["channel"])
        if channel is None:
            raise ServiceError("Choose a channel where the customer wrote in public.", field="channel")
        drafts.draft_move_to_private(
            case=case, actor=request.user, channel=channel, private_channel_kind=data["private_channel_kind"]
        )
        where = "a direct message" if data["private_channel_kind"] == "dm" else "an e-mail"
        return f"Asked the customer publicly to continue by {where}; the case waits on them."

    return _act(request, reference, forms.MovePrivateForm, move)


@login_required
@require_POST
def case_take_over(request: HttpRequest, reference: str) -> HttpResponse:
    def take_over(case: Case, data: dict) -> str:
        lock = drafts.draft_lock_take_over(case=case, actor=request.user, reason=data["reason"])
        return f"You now hold the reply{f' (from {lock.taken_from})' if lock.taken_from else ''}."

    return _act(request, reference, forms.TakeOverForm, take_over)


@login_required
@require_GET
def case_live(request: HttpRequest, reference: str) -> HttpResponse:
    """The live regions of a case page (header, presence, timeline, actions), out of band: what a
    page fetches when its socket (re)connects after missing something."""
    page = _page_or_404(request, reference)
    return render(request, "cases/partials/case_live.html", _case_context(request, page))
