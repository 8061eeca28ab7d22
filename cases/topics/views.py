"""The topics page (desk/topics/): what customers write about, rising and falling week over
week, with a phrase's examples and a CSV of the cells. Thin: a filter form, the selectors,
the templates. Supervisors (their departments) and admins (all): ``cases.permissions``."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from connectors.models import Channel

from .. import charts, exports, permissions
from ..models import Case, Department, TopicWeek
from . import selectors
from .services import week_of

MAX_WEEKS = 26
# "category=none": the cases triage has not categorised.
UNCATEGORISED = "none"


class TopicFilterForm(forms.Form):
    """The page's filters; every one optional. A wrong value is an error naming its field."""

    week = forms.DateField(
        label=gettext_lazy("Week of"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    weeks = forms.IntegerField(
        label=gettext_lazy("Weeks"),
        required=False,
        min_value=2,
        max_value=MAX_WEEKS,
        widget=forms.NumberInput(attrs={"placeholder": "8"}),
    )
    kind = forms.ChoiceField(label=gettext_lazy("Show"), required=False, choices=TopicWeek.Kind.choices)
    channel = forms.TypedChoiceField(
        label=gettext_lazy("Channel"), coerce=int, required=False, empty_value=None
    )
    department = forms.TypedChoiceField(
        label=gettext_lazy("Department"), coerce=int, required=False, empty_value=None
    )
    category = forms.ChoiceField(label=gettext_lazy("Category"), required=False)
    words = forms.TypedChoiceField(
        label=gettext_lazy("Words"),
        coerce=int,
        required=False,
        empty_value=None,
        choices=[("", gettext_lazy("Any")), ("1", "1"), ("2", "2"), ("3", "3")],
    )
    q = forms.CharField(label=gettext_lazy("Containing"), required=False, max_length=120, strip=True)
    order = forms.ChoiceField(
        label=gettext_lazy("Order"),
        required=False,
        choices=[
            ("volume", gettext_lazy("Most this week")),
            ("rising", gettext_lazy("Rising")),
            ("falling", gettext_lazy("Falling")),
        ],
    )

    def __init__(self, data, *, channels, departments):
        super().__init__(data)
        self.fields["channel"].choices = [("", _("All channels"))] + [(c.pk, c.name) for c in channels]
        self.fields["department"].choices = [("", _("All my departments"))] + [
            (d.pk, d.name) for d in departments
        ]
        self.fields["category"].choices = [("", _("All categories"))] + [
            (value or UNCATEGORISED, label) for value, label in Case.Category.choices
        ]

    def topic_filters(self, scope: set[int] | None) -> selectors.TopicFilters:
        data = self.cleaned_data
        zone = ZoneInfo(settings.TIME_ZONE)
        day = data.get("week")
        category = data.get("category") or None
        return selectors.TopicFilters(
            week=day - timedelta(days=day.weekday()) if day else week_of(timezone.now(), zone),
            weeks=data.get("weeks") or 8,
            kind=data.get("kind") or TopicWeek.Kind.PHRASE,
            channel_id=data.get("channel"),
            department_id=data.get("department"),
            category="" if category == UNCATEGORISED else category,
            words=data.get("words"),
            contains=data.get("q") or "",
            order=data.get("order") or "volume",
            department_ids=None if scope is None else frozenset(scope),
        )


def _form(request: HttpRequest) -> tuple[TopicFilterForm, set[int] | None]:
    if not permissions.can_see_topics(request.user):
        raise PermissionDenied("Topics are for supervisors and admins.")
    scope = permissions.topic_department_ids(request.user)
    departments = Department.objects.order_by("name")
    if scope is not None:
        departments = departments.filter(pk__in=scope)
    channels = Channel.objects.order_by("name").only("pk", "name")
    return TopicFilterForm(request.GET or None, channels=channels, departments=departments), scope


def _context(form, **extra) -> dict:
    return {"nav": "topics", "form": form, **extra}


@login_required
@require_GET
def topic_list(request: HttpRequest) -> HttpResponse:
    form, scope = _form(request)
    if not _bound_and_valid(form):
        return render(request, "cases/topics/list.html", _context(form, rows=None), status=400)
    filters = form.topic_filters(scope)
    rows = selectors.topic_list(filters)
    for row in rows:
        row.sparkline = charts.sparkline(
            row.series, title=_("%(phrase)s, messages per week") % {"phrase": row.phrase}
        )
    return render(
        request,
        "cases/topics/list.html",
        _context(
            form,
            rows=rows,
            filters=filters,
            state=selectors.topic_state(),
            query=request.GET.urlencode(),
        ),
    )


@login_required
@require_GET
def topic_detail(request: HttpRequest) -> HttpResponse:
    form, scope = _form(request)
    phrase = (request.GET.get("phrase") or "").strip().lower()
    valid = _bound_and_valid(form)
    if valid and not phrase:
        form.add_error(None, _("Phrase: choose the phrase to show (phrase=...)."))
    if not valid or not phrase:
        return render(request, "cases/topics/detail.html", _context(form, detail=None), status=400)
    filters = form.topic_filters(scope)
    detail = selectors.topic_detail(filters, phrase=phrase, user=request.user)
    template = "cases/topics/detail_panel.html" if request.htmx else "cases/topics/detail.html"
    return render(
        request,
        template,
        _context(
            form,
            detail=detail,
            filters=filters,
            weeks=list(zip(filters.week_list, detail.series, strict=True)),
            chart=charts.bars(
                [w.strftime("%d %b") for w in filters.week_list],
                [charts.Series(_("Messages"), detail.series)],
                title=_("“%(phrase)s” per week") % {"phrase": phrase},
                desc=_("Customer messages using the phrase, week by week."),
            ),
        ),
    )


@login_required
@require_GET
def topic_csv(request: HttpRequest) -> HttpResponse:
    form, scope = _form(request)
    if not _bound_and_valid(form):
        return render(request, "cases/topics/list.html", _context(form, rows=None), status=400)
    filters = form.topic_filters(scope)
    return exports.csv_response(
        request,
        header=selectors.CSV_HEADER,
        rows=exports.lazy_rows(lambda: selectors.topic_csv_rows(filters)),
        filename=f"topics-{filters.first_week}-{filters.week}.csv",
    )


def _bound_and_valid(form: TopicFilterForm) -> bool:
    """No filters at all is valid (the defaults); else the form must be."""
    if not form.is_bound:
        form.full_clean()
        form.cleaned_data = {}
        return True
    return form.is_valid()
