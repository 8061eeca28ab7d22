"""Satisfaction survey pages: the customer's (a signed link, no sign-in) and the supervisors' report.

Thin: check the link or the permission, validate the form, call ``cases.csat`` services or
selectors, render.

- ``/s/<token>/``: the one question (a rating from 1 to 5 and a comment), answered once;
  an altered or made-up link is refused with 400, an expired one with 410, a link whose
  survey is gone with 404, a second answer with 409, each as a page saying so.
- ``/s/<token>/opt-out/``: the customer asks not to be sent surveys (a GET only shows the
  button: mail scanners open links).
- ``/desk/reports/csat/``: CSAT per channel, department and agent, for supervisors (their
  departments) and admins; ``/desk/reports/csat/export.csv`` streams the same figures.
"""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from . import exports, report_views
from .csat import links, report
from .csat import services as csat
from .errors import ServiceError
from .models import SatisfactionSurvey

RATING_CHOICES = [
    (1, gettext_lazy("1 — Very dissatisfied")),
    (2, gettext_lazy("2 — Dissatisfied")),
    (3, gettext_lazy("3 — Neither")),
    (4, gettext_lazy("4 — Satisfied")),
    (5, gettext_lazy("5 — Very satisfied")),
]


class SurveyForm(forms.Form):
    rating = forms.TypedChoiceField(
        label=gettext_lazy("Your rating"), choices=RATING_CHOICES, coerce=int, widget=forms.RadioSelect
    )
    comment = forms.CharField(
        label=gettext_lazy("Anything you would like to add? (optional)"),
        required=False,
        max_length=csat.COMMENT_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4}),
    )


def _refused(request, message: str, status: int):
    return render(request, "cases/csat/refused.html", {"message": message}, status=status)


def _survey_of(request, token: str):
    """The survey a link names, or the response refusing the link."""
    try:
        survey_id = links.survey_id_from(token)
    except links.LinkRefused as exc:
        return None, _refused(request, exc.message, 410 if exc.expired else 400)
    survey = SatisfactionSurvey.objects.select_related("case").filter(pk=survey_id).first()
    if survey is None:
        return None, _refused(request, "This survey no longer exists.", 404)
    return survey, None


@require_http_methods(["GET", "POST"])
def survey(request, token: str):
    survey, refused = _survey_of(request, token)
    if refused is not None:
        return refused
    if survey.answered_at is not None:
        status = 409 if request.method == "POST" else 200
        return render(request, "cases/csat/answered.html", {"survey": survey, "token": token}, status=status)
    form = SurveyForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            csat.survey_answer(
                survey=survey, rating=form.cleaned_data["rating"], comment=form.cleaned_data["comment"]
            )
        except csat.AlreadyAnswered:  # answered meanwhile (a second tab, a double click)
            survey.refresh_from_db(fields=["rating", "answered_at"])
            return render(request, "cases/csat/answered.html", {"survey": survey, "token": token}, status=409)
        except ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            return redirect("csat-survey", token=token)
    status = 400 if form.is_bound else 200
    return render(
        request, "cases/csat/survey.html", {"survey": survey, "form": form, "token": token}, status=status
    )


@require_http_methods(["GET", "POST"])
def opt_out(request, token: str):
    survey, refused = _survey_of(request, token)
    if refused is not None:
        return refused
    done = False
    if request.method == "POST":
        csat.survey_opt_out(survey=survey)
        done = True
    return render(request, "cases/csat/opt_out.html", {"survey": survey, "token": token, "done": done})


@login_required
def csat_report(request):
    form = report_views._filters(request)  # supervisors and admins only (PermissionDenied)
    figures = comments = totals = None
    if form.is_valid():
        period = report_views.period_of(form, request.user)
        scope = {"start": period["start"], "end": period["end"], "department_ids": period["department_ids"]}
        figures = report.csat_report(**scope)
        totals = report.total(figures["channel"])
        comments = report.recent_comments(**scope)
    tables = (
        [{"key": key, "title": report.GROUP_LABELS[key], "rows": figures[key]} for key in report.GROUPS]
        if figures is not None
        else None
    )
    return render(
        request,
        "cases/csat/report.html",
        {
            "form": form,
            "tables": tables,
            "totals": totals,
            "comments": comments,
            "query": request.GET.urlencode(),
            "sections": report_views._sections(),
            "nav": "reports",
        },
        status=200 if form.is_valid() else 400,
    )


@login_required
def csat_report_csv(request):
    form = report_views._filters(request)
    if not form.is_valid():
        return render(
            request,
            "cases/csat/report.html",
            {"form": form, "tables": None, "sections": report_views._sections(), "nav": "reports"},
            status=400,
        )
    period = report_views.period_of(form, request.user)
    start, end = form.cleaned_data["start"], form.cleaned_data["end"]
    return exports.csv_response(
        request,
        header=report.CSV_HEADER,
        rows=exports.lazy_rows(
            lambda: report.csv_rows(
                start=period["start"], end=period["end"], department_ids=period["department_ids"]
            )
        ),
        filename=f"csat-{start}-{end}.csv",
    )
