"""The agent desk pages: thin views over cases.selectors (reads) and the services (writes).

Every action is a plain POST form that redirects back to the case (works without
JavaScript); with htmx the same POST answers with the changed regions of the case page,
swapped out of band, so a draft being written elsewhere on the page is never lost.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from customers import services as customer_services
from customers.errors import CustomerRefused
from customers.models import Customer, Identity

from . import (
    canned,
    customer_panel,
    drafts,
    escalation,
    forms,
    health,
    permissions,
    selectors,
    services,
    triage,
)
from . import suggestion_services as suggestions
from .errors import ServiceError, StaleDraft
from .models import Case
from .templatetags.desk import quick_widget_renderer

# --- Queue -------------------------------------------------------------------------------------


@login_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    departments = selectors.queue_departments(user=request.user)
    form = forms.QueueFilterForm(
        request.GET,
        departments=departments,
        all_label="All departments" if permissions.is_admin(request.user) else "All my departments",
        renderer=quick_widget_renderer,  # the same markup as Django's widget templates, quicker
    )
    form.is_valid()  # invalid filters are dropped and reported; the rest still apply
    data = form.cleaned_data
    q = (data.get("q") or "").strip()
    reference = selectors.search_reference(q) if q else None
    # A reference typed in full opens the case itself when the agent may see it.
    if (
        reference
        and q.upper().startswith("C-")
        and selectors.case_for_page(user=request.user, reference=reference) is not None
    ):
        return redirect("desk:case", reference=reference)
    view = data.get("view") or ("mine" if selectors.user_has_open_cases(user=request.user) else "department")
    seq = selectors.live_seq()
    after = data.get("after")
    page = selectors.case_queue_page(
        user=request.user,
        view=view,
        channel_kind=data.get("kind") or "",
        priority=data.get("priority") or "",
        status=data.get("status") or "",
        department_id=data.get("department"),
        q=q,
        after=after,
    )
    return render(
        request,
        "cases/queue.html",
        {
            "form": form,
            "view": view,
            "q": q,
            "nav": "mine" if view == "mine" else "queues",
            "views": form.fields["view"].choices,
            "cases": page.cases,
            "next_cursor": page.next_cursor.encode() if page.next_cursor else "",
            "after_cursor": after.encode() if after else "",
            "is_later_page": after is not None,
            "filter_errors": forms.error_messages(form),
            "seq": seq,
        },
    )


# --- The case page ---------------------------------------------------------------------------------


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


# --- Customers ---------------------------------------------------------------------------------------

# How the customer page names the input a refusal is about (the services name their arguments).
CUSTOMER_FIELDS = {
    "source": "Customer number",
    "target": "This customer",
    "customer": "Customer",
    "suggestion": "Suggestion",
    "reason": "Reason",
    "identity": "Handle, address or number",
}


def _customer_or_404(request: HttpRequest, pk: int) -> Customer:
    customer = selectors.customer_for_page(user=request.user, customer_id=pk)
    if customer is None:
        raise Http404("No such customer.")
    return customer


def _customer_context(
    request: HttpRequest,
    customer: Customer,
    *,
    merge_form: forms.CustomerMergeForm | None = None,
    unmerge_form: forms.CustomerUnmergeForm | None = None,
    link_form: forms.IdentityLinkForm | None = None,
) -> dict:
    user = request.user
    cases = selectors.customer_cases(user=user, customer=customer)
    merges = selectors.customer_merges(customer=customer)
    can_merge = permissions.can_merge_customers(user)
    merged_away = customer.merged_into_id is not None
    can_link = permissions.can_link_identities(user) and not merged_away
    return {
        "customer": customer,
        "identities": selectors.customer_identities_with_provenance(customer=customer),
        "cases": cases,
        "open_count": sum(1 for case in cases if case.is_open),
        "cases_limit": selectors.CUSTOMER_CASES_LIMIT,
        "suggestions": selectors.customer_suggestions(user=user, customer=customer),
        "suggestions_limit": selectors.CUSTOMER_SUGGESTIONS_LIMIT,
        # A customer merged away takes no links: they go to the one it was merged into.
        "can_link": can_link,
        "link_form": (link_form or forms.IdentityLinkForm()) if can_link else None,
        "can_merge": can_merge,
        "merged_in": merges.merged_in,
        "merged_away": merges.merged_away,
        "merge_form": (merge_form or forms.CustomerMergeForm(target=customer))
        if can_merge and not merged_away
        else None,
        "unmerge_form": (unmerge_form or forms.CustomerUnmergeForm()) if can_merge and merged_away else None,
        "can_privacy": permissions.can_erase_customer(user)
        or permissions.can_export_customer(user, customer),
    }


@login_required
@require_GET
def customer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    customer = _customer_or_404(request, pk)
    return render(request, "cases/customer_detail.html", _customer_context(request, customer))


def _customer_refusal(request: HttpRequest, field: str | None, message: str) -> None:
    label = CUSTOMER_FIELDS.get(field or "", (field or "").replace("_", " ").capitalize())
    messages.error(request, f"{label}: {message}" if label else message)


def _customer_act(
    request: HttpRequest,
    pk: int,
    action: Callable[[Customer, dict], str],
    *,
    form_class: type | None = None,
    form_kwargs: Callable[[Customer], dict] | None = None,
    allowed: Callable[[object], bool] | None = None,
    denied: str = "",
    form_name: str = "",
) -> HttpResponse:
    """The customer page's version of ``_act``: check the rule, validate, call one service, report
    the outcome as a message. Success redirects to the customer page, or with htmx renders it;
    a refusal renders the page with its status and the form as it was typed."""
    customer = _customer_or_404(request, pk)
    status, form = 200, None
    if allowed is not None and not allowed(request.user):
        messages.error(request, denied)
        status = 403
    else:
        form = (
            form_class(request.POST, **(form_kwargs(customer) if form_kwargs else {})) if form_class else None
        )
        if form is not None and not form.is_valid():
            for text in forms.error_messages(form):
                messages.error(request, text)
            status = 400
        else:
            try:
                done = action(customer, form.cleaned_data if form is not None else {})
            except ServiceError as error:
                _customer_refusal(request, error.field, error.message)
                status = error.status
            except CustomerRefused as error:
                _customer_refusal(request, error.field, error.reason)
                status = 409 if error.field == "suggestion" else 400
            else:
                messages.success(request, done)
    if status == 200 and not request.htmx:
        return redirect("desk:customer", pk=pk)
    shown = _customer_or_404(request, pk)  # re-read: the service changed it
    kept = {form_name: form} if form_name and status == 400 else {}
    return render(
        request, "cases/customer_detail.html", _customer_context(request, shown, **kept), status=status
    )


def _suggestion_or_404(customer: Customer, suggestion_id: int):
    suggestion = selectors.customer_suggestion(customer=customer, suggestion_id=suggestion_id)
    if suggestion is None:
        raise Http404("No such suggestion.")
    return suggestion


@login_required
@require_POST
def customer_suggestion_accept(request: HttpRequest, pk: int, suggestion_id: int) -> HttpResponse:
    def accept(customer: Customer, _data: dict) -> str:
        suggestion = _suggestion_or_404(customer, suggestion_id)
        identity = suggestions.suggestion_accept(suggestion=suggestion, actor=request.user)
        return f"{identity} is now linked to {customer} (suggested, confirmed by you)."

    return _customer_act(
        request,
        pk,
        accept,
        allowed=permissions.can_link_identities,
        denied="Only members of a department link identities.",
    )


@login_required
@require_POST
def customer_suggestion_dismiss(request: HttpRequest, pk: int, suggestion_id: int) -> HttpResponse:
    def dismiss(customer: Customer, _data: dict) -> str:
        suggestion = _suggestion_or_404(customer, suggestion_id)
        suggestions.suggestion_dismiss(suggestion=suggestion, actor=request.user)
        return f"Dismissed: {suggestion.value} will not be suggested for {customer} again."

    return _customer_act(
        request,
        pk,
        dismiss,
        allowed=permissions.can_link_identities,
        denied="Only members of a department link identities.",
    )


@login_required
@require_POST
def customer_link(request: HttpRequest, pk: int) -> HttpResponse:
    """Link an identity (of a customer the agent sees) to this customer, as linked by an agent."""

    def link(customer: Customer, data: dict) -> str:
        identity = selectors.identity_for_link(user=request.user, kind=data["kind"], value=data["identifier"])
        if identity is None:
            raise ServiceError(
                f"No {Identity.Kind(data['kind']).label} identity '{data['identifier']}' that you can see.",
                field="identity",
            )
        if identity.customer_id == customer.pk:
            raise ServiceError(f"{identity} is already {customer}'s.", field="identity")
        previous = identity.customer
        customer_services.identity_link(
            identity=identity, customer=customer, actor=request.user, source=Identity.LinkSource.AGENT
        )
        return f"{identity} is now linked to {customer}; {previous} keeps their cases."

    return _customer_act(
        request,
        pk,
        link,
        form_class=forms.IdentityLinkForm,
        allowed=permissions.can_link_identities,
        denied="Only members of a department link identities.",
        form_name="link_form",
    )


@login_required
@require_POST
def customer_merge(request: HttpRequest, pk: int) -> HttpResponse:
    """Merge another customer (by number) into this one: supervisors and admins who see both."""

    def merge(customer: Customer, data: dict) -> str:
        source = selectors.customer_for_page(user=request.user, customer_id=data["source"])
        if source is None:
            raise ServiceError(f"There is no customer #{data['source']} that you can see.", field="source")
        services.customer_merge(source=source, target=customer, actor=request.user)
        return f"{source} (#{source.pk}) was merged into {customer}: their identities and cases are here now."

    return _customer_act(
        request,
        pk,
        merge,
        form_class=forms.CustomerMergeForm,
        form_kwargs=lambda customer: {"target": customer},
        allowed=permissions.can_merge_customers,
        denied="Only supervisors and admins merge customers.",
        form_name="merge_form",
    )


@login_required
@require_POST
def customer_unmerge(request: HttpRequest, pk: int) -> HttpResponse:
    """Undo the merge of this customer into another: it becomes a customer of its own again."""

    def unmerge(customer: Customer, data: dict) -> str:
        services.customer_unmerge(source=customer, actor=request.user, reason=data["reason"])
        return f"{customer} is a customer of their own again, with the identities and cases the merge moved."

    return _customer_act(
        request,
        pk,
        unmerge,
        form_class=forms.CustomerUnmergeForm,
        allowed=permissions.can_merge_customers,
        denied="Only supervisors and admins undo merges.",
        form_name="unmerge_form",
    )


# --- Supervisor board ---------------------------------------------------------------------------------


def _board_departments_or_403(request: HttpRequest) -> list:
    departments = selectors.board_departments(user=request.user)
    if not departments:
        raise PermissionDenied("The board is for supervisors.")
    return departments


@login_required
@require_GET
def board(request: HttpRequest) -> HttpResponse:
    departments = _board_departments_or_403(request)
    seq = selectors.live_seq()
    stats = selectors.board_stats(departments=departments)
    agents = selectors.board_agent_rows(departments=departments, stats=stats)
    form = forms.BoardFilterForm(request.GET, departments=departments, agents=agents)
    form.is_valid()
    data = form.cleaned_data
    picked = selectors.board_cases(
        departments=departments,
        department_id=data.get("department"),
        assignee_id=data.get("agent"),
        sla_state=data.get("sla") or "",
        unassigned=bool(data.get("unassigned")),
    )
    targets, members = selectors.reassign_targets(user=request.user)
    return render(
        request,
        "cases/board.html",
        {
            "nav": "board",
            "department_rows": selectors.board_department_rows(departments=departments, stats=stats),
            "agent_rows": agents,
            "filter_form": form,
            "filter_errors": forms.error_messages(form),
            "picked": picked,
            "picked_limit": selectors.BOARD_CASES_LIMIT,
            "reassign_form": forms.BulkReassignForm(
                case_ids=[case.pk for case in picked], departments=targets, members=members
            ),
            "seq": seq,
            "now": datetime.now(UTC),
            # Channel health on the board's departments' channels (one statement).
            "health_alerts": health.open_health_alerts(department_ids={d.pk for d in departments}),
        },
    )


@login_required
@require_POST
def board_reassign(request: HttpRequest) -> HttpResponse:
    _board_departments_or_403(request)
    posted = [int(pk) for pk in request.POST.getlist("cases") if pk.isdigit()]
    visible = Case.objects.filter(permissions.visible_cases_q(request.user), pk__in=posted).distinct()
    case_ids = list(visible.values_list("pk", flat=True))
    targets, members = selectors.reassign_targets(user=request.user)
    form = forms.BulkReassignForm(request.POST, case_ids=case_ids, departments=targets, members=members)
    back = reverse("desk:board") + ("?" + urlencode(_board_query(request)) if _board_query(request) else "")
    if not form.is_valid():
        for text in forms.error_messages(form):
            messages.error(request, text)
        return redirect(back)
    data = form.cleaned_data
    try:
        moved = escalation.case_bulk_reassign(
            cases=Case.objects.filter(pk__in=data["cases"]),
            to_department=form.departments.get(data["to_department"]) if data["to_department"] else None,
            assignee=form.users.get(data["assignee"]) if data["assignee"] else None,
            actor=request.user,
            reason=data["reason"],
            note=data["note"],
        )
    except ServiceError as error:
        _report(request, error)
        return redirect(back)
    messages.success(request, f"{len(moved)} case{'s' if len(moved) != 1 else ''} reassigned.")
    return redirect(back)


def _board_query(request: HttpRequest) -> dict:
    return {
        name: request.POST[f"filter_{name}"]
        for name in ("department", "agent", "sla", "unassigned")
        if request.POST.get(f"filter_{name}")
    }
