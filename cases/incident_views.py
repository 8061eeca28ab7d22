"""The desk's incident screens: the list of surges, and one incident with its mentions, its cases,
the bulk public reply (with a preview of one filled-in reply) and closing it with a note.

Agents of the channel's department read; its supervisors and admins act
(``permissions.can_act_on_incident``). Writes go through :mod:`cases.incident_services`.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_POST

from . import incident_selectors, incident_services, permissions, urgent
from .errors import ServiceError
from .forms import error_messages
from .models import Incident


class IncidentReplyForm(forms.Form):
    text = forms.CharField(
        label=gettext_lazy("Reply"),
        max_length=20000,
        strip=True,
        error_messages={"required": gettext_lazy("Write the reply customers will read.")},
    )


class IncidentCloseForm(forms.Form):
    note = forms.CharField(
        label=gettext_lazy("Closing note"),
        max_length=5000,
        strip=True,
        error_messages={
            "required": gettext_lazy("Say what happened and what was done; it stays on the record.")
        },
    )


@login_required
@require_GET
def incident_list(request: HttpRequest) -> HttpResponse:
    incidents = incident_selectors.incident_list(user=request.user)
    return render(
        request,
        "cases/incidents/list.html",
        {
            "nav": "incidents",
            "open_incidents": [i for i in incidents if i.status == Incident.Status.OPEN],
            "recent_incidents": [i for i in incidents if i.status != Incident.Status.OPEN],
            "recent_days": incident_selectors.RECENT_DAYS,
        },
    )


def _incident_or_404(request: HttpRequest, pk: int) -> Incident:
    incident = incident_selectors.incident_for_page(user=request.user, pk=pk)
    if incident is None:
        raise Http404("No such incident.")
    return incident


def _acting_incident(request: HttpRequest, pk: int) -> Incident:
    incident = _incident_or_404(request, pk)
    if not permissions.can_act_on_incident(request.user, incident):
        raise PermissionDenied("Only the department's supervisors and admins act on an incident.")
    return incident


def _page(
    request: HttpRequest,
    incident: Incident,
    *,
    reply_form: IncidentReplyForm | None = None,
    close_form: IncidentCloseForm | None = None,
    preview: bool = False,
    status: int = 200,
) -> HttpResponse:
    cases = list(incident_selectors.incident_cases(incident=incident))
    answered, skipped = incident_services.split_targets(cases)
    skipped_by_case = {item.case.pk: item for item in skipped}
    answered_ids = {case.pk for case in answered}
    rows = [
        incident_selectors.CaseRow(
            case=case,
            gets_reply=case.pk in answered_ids,
            skipped_why=skipped_by_case[case.pk].why if case.pk in skipped_by_case else "",
            answered_on=skipped_by_case[case.pk].answered_on if case.pk in skipped_by_case else None,
            may_work=permissions.can_work_case(request.user, case),
        )
        for case in cases
    ]
    mentions, more_mentions = incident_selectors.incident_mentions(incident=incident)
    can_act = permissions.can_act_on_incident(request.user, incident)
    plan = None
    if preview and reply_form is not None and reply_form.is_valid():
        plan = incident_services.incident_reply_plan(
            incident=incident, author=request.user, text=reply_form.cleaned_data["text"], cases=cases
        )
    pages = incident_selectors.incident_pages(incident=incident)
    context = {
        "nav": "incidents",
        "incident": incident,
        "alerts": incident_selectors.incident_alerts(incident=incident),
        "pages": pages,
        "may_acknowledge": any(p.acknowledged_at is None for p in pages)
        and (can_act or any(p.user_id == request.user.pk for p in pages)),
        "mentions": mentions,
        "more_mentions": more_mentions,
        "mentions_limit": incident_selectors.MENTIONS_LIMIT,
        "rows": rows,
        "answered_count": len(answered),
        "closed_count": sum(1 for item in skipped if item.why == "closed"),
        "repeat_count": sum(1 for item in skipped if item.why == "same_customer"),
        "refused": [row.case.reference for row in rows if row.gets_reply and not row.may_work],
        "can_act": can_act,
        "is_open": incident.status == Incident.Status.OPEN,
        "reply_form": reply_form or IncidentReplyForm(),
        "close_form": close_form or IncidentCloseForm(),
        "placeholders": ["{" + name + "}" for name in incident_services.INCIDENT_PLACEHOLDERS],
        "plan": plan,
        "preview_target": plan.targets[0] if plan and plan.targets else None,
    }
    return render(request, "cases/incidents/detail.html", context, status=status)


@login_required
@require_GET
def incident_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _page(request, _incident_or_404(request, pk))


def _form_refused(request: HttpRequest, form: forms.Form) -> None:
    for text in error_messages(form):
        messages.error(request, text)


def _service_refused(request: HttpRequest, form: forms.Form, error: ServiceError) -> None:
    """Put a service's refusal beside the field it names (and in the messages, naming it too)."""
    if error.field in form.fields:
        form.add_error(error.field, error.message)
        _form_refused(request, form)
    else:
        messages.error(request, error.message)


@login_required
@require_POST
def incident_reply(request: HttpRequest, pk: int) -> HttpResponse:
    """Preview (``action=preview``) or send the bulk reply."""
    incident = _acting_incident(request, pk)
    form = IncidentReplyForm(request.POST)
    if not form.is_valid():
        _form_refused(request, form)
        return _page(request, incident, reply_form=form, status=400)
    text = form.cleaned_data["text"]
    unknown = incident_services.unknown_placeholders(text)
    if request.POST.get("action") == "preview":
        if unknown:
            form.add_error("text", _("Unknown placeholder %(names)s.") % {"names": ", ".join(unknown)})
            _form_refused(request, form)
            return _page(request, incident, reply_form=form, status=400)
        return _page(request, incident, reply_form=form, preview=True)
    if incident.status != Incident.Status.OPEN:
        messages.error(request, _("This incident is closed; open a case to answer a customer."))
        return _page(request, incident, reply_form=form, status=409)
    try:
        sent = incident_services.incident_reply(incident=incident, author=request.user, text=text)
    except ServiceError as error:
        _service_refused(request, form, error)
        return _page(request, incident, reply_form=form, status=error.status)
    messages.success(
        request,
        ngettext("Reply queued to %(count)s customer.", "Reply queued to %(count)s customers.", len(sent))
        % {"count": len(sent)},
    )
    return redirect("desk:incident", pk=incident.pk)


@login_required
@require_POST
def incident_close(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _acting_incident(request, pk)
    form = IncidentCloseForm(request.POST)
    if not form.is_valid():
        _form_refused(request, form)
        return _page(request, incident, close_form=form, status=400)
    try:
        incident_services.incident_close(
            incident=incident, actor=request.user, note=form.cleaned_data["note"]
        )
    except ServiceError as error:
        _service_refused(request, form, error)
        return _page(request, incident, close_form=form, status=error.status)
    messages.success(request, _("Incident closed."))
    return redirect("desk:incident", pk=incident.pk)


@login_required
@require_POST
def incident_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    """Acknowledge the incident's open pages: the person paged, the department's supervisors, admins."""
    incident = _incident_or_404(request, pk)
    paged = incident.pages.filter(user=request.user).exists()
    if not (paged or permissions.can_act_on_incident(request.user, incident)):
        raise PermissionDenied("Only the person paged, supervisors and admins acknowledge.")
    count = urgent.incident_pages_acknowledge(incident=incident, actor=request.user)
    if count:
        messages.success(request, _("Page acknowledged."))
    else:
        messages.info(request, _("Already acknowledged."))
    return redirect("desk:incident", pk=incident.pk)
