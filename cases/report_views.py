"""The supervisors' report pages: thin, over cases.reports (figures) and cases.charts (SVG)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import charts, exports, permissions, reports
from .models import Department
from .reports import figures

MAX_DAYS = 366


class ReportForm(forms.Form):
    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))
    group_by = forms.ChoiceField(
        label="Group by", choices=[("channel", "Channel"), ("department", "Department")]
    )

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            self.add_error("end", "The end date is before the start date.")
        if start and end and (end - start).days > 366:
            self.add_error("end", "A report covers at most a year.")
        return data


class FigureFilterForm(forms.Form):
    """The report page's filters: a date range in the desk's time zone and one department."""

    start = forms.DateField(label=gettext_lazy("From"), widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(
        label=gettext_lazy("To (inclusive)"), widget=forms.DateInput(attrs={"type": "date"})
    )
    department = forms.TypedChoiceField(
        label=gettext_lazy("Department"), coerce=int, required=False, empty_value=None
    )

    def __init__(self, data, *, departments):
        super().__init__(data)
        self.fields["department"].choices = [("", _("All my departments"))] + [
            (d.pk, d.name) for d in departments
        ]

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            self.add_error("end", _("The end date is before the start date."))
        if start and end and (end - start).days >= MAX_DAYS:
            self.add_error("end", _("A report covers at most a year."))
        return data


def default_filters() -> dict:
    today = timezone.localdate()
    return {"start": (today - timedelta(days=13)).isoformat(), "end": today.isoformat()}


def report_departments(user):
    scope = permissions.report_department_ids(user)
    departments = Department.objects.order_by("name")
    return departments if scope is None else departments.filter(pk__in=scope)


def period_of(form: FigureFilterForm, user) -> dict:
    """The keyword arguments of every figure function for a valid form."""
    zone = timezone.get_current_timezone()
    start = datetime.combine(form.cleaned_data["start"], time.min, tzinfo=zone)
    end = datetime.combine(form.cleaned_data["end"] + timedelta(days=1), time.min, tzinfo=zone)
    scope = permissions.report_department_ids(user)
    department = form.cleaned_data.get("department")
    if department is not None:
        scope = {department}
    return {"start": start, "end": end, "zone": zone, "department_ids": scope}


def _filters(request) -> FigureFilterForm:
    if not permissions.can_see_reports(request.user):
        raise PermissionDenied("Reports are for supervisors and admins.")
    data = request.GET.copy() if request.GET else None
    if data is None:
        data = default_filters()
    else:
        for key, value in default_filters().items():
            data.setdefault(key, value)
    return FigureFilterForm(data, departments=list(report_departments(request.user)))


def _sections():
    """The report sections linked from every report page; a new report adds a line here."""
    return [
        {"url": "reports", "label": _("Charts")},
        {"url": "report-promises", "label": _("Service promises")},
        {"url": "report-csat", "label": _("Satisfaction")},
    ]


def _charts(period) -> list[dict]:
    days = figures.days(period["start"], period["end"], period["zone"])
    day_labels = [d.strftime("%d %b") for d in days]

    promises = figures.promises_per_day(**period)
    channels = sorted({row[1] for row in promises})
    kept = {(d, ch): k for d, ch, k, _b in promises}
    promise_series = [charts.Series(ch, [kept.get((d, ch), 0) for d in days]) for ch in channels]

    buckets = figures.first_response_buckets(**period)

    volume = figures.volume_by_hour(**period)
    cells = [[0] * 24 for _ in figures.WEEKDAYS]
    for _ch, weekday, hour, n in volume:
        cells[figures.WEEKDAYS.index(weekday)][hour] += n

    backlog = figures.backlog_per_day(**period)
    clock = figures.department_clock(**period)
    clock_labels = [row[0] for row in clock]
    return [
        {
            "slug": "promises",
            "title": _("Promises kept per channel per day"),
            "svg": charts.lines(
                day_labels,
                promise_series,
                title=_("Promises kept per channel per day"),
                desc=_("First responses given within the promise, per day, one line per channel."),
            ),
            "header": [_("Day"), _("Channel"), _("Kept"), _("Broken")],
            "rows": promises,
        },
        {
            "slug": "first-response",
            "title": _("First-response times"),
            "svg": charts.histogram(
                [label for label, _n in buckets],
                [n for _label, n in buckets],
                title=_("First-response times"),
                desc=_("Cases by the time their first response took."),
            ),
            "header": [_("Time to first response"), _("Cases")],
            "rows": buckets,
        },
        {
            "slug": "volume",
            "title": _("New cases by hour of the week"),
            "svg": charts.heat_map(
                figures.WEEKDAYS,
                [f"{h:02d}" for h in range(24)],
                cells,
                title=_("New cases by hour of the week"),
                desc=_("Cases opened in each hour of each weekday, all channels; darker is busier."),
            ),
            "header": [_("Channel"), _("Weekday"), _("Hour"), _("Cases")],
            "rows": volume,
        },
        {
            "slug": "backlog",
            "title": _("Backlog and breaches per day"),
            "svg": charts.lines(
                day_labels,
                [
                    charts.Series(_("Backlog"), [row[3] for row in backlog]),
                    charts.Series(_("Breaches"), [row[4] for row in backlog]),
                ],
                title=_("Backlog and breaches per day"),
                desc=_("Open cases at the end of each day, and promises breached that day."),
            ),
            "header": [_("Day"), _("Opened"), _("Resolved or closed"), _("Backlog"), _("Breaches")],
            "rows": backlog,
        },
        {
            "slug": "department-clock",
            "title": _("Time with each department"),
            "svg": charts.bars(
                clock_labels,
                [
                    charts.Series(_("Within target"), [row[3] for row in clock]),
                    charts.Series(_("Over target"), [row[4] for row in clock]),
                ],
                title=_("Time with each department"),
                desc=_(
                    "Stays with each department that began in the period, within and over its handling target."
                ),
            ),
            "header": [
                _("Department"),
                _("Target (min)"),
                _("Stays"),
                _("Within target"),
                _("Over target"),
                _("Average (min)"),
                _("Longest (min)"),
            ],
            "rows": clock,
        },
    ]


@login_required
def overview(request):
    form = _filters(request)
    sections = None
    if form.is_valid():
        sections = _charts(period_of(form, request.user))
    return render(
        request,
        "cases/reports/overview.html",
        {
            "form": form,
            "charts": sections,
            "query": request.GET.urlencode(),
            "sections": _sections(),
            "nav": "reports",
        },
    )


@login_required
def figure_csv(request, figure: str):
    if figure not in figures.FIGURES:
        raise Http404("No such figure.")
    form = _filters(request)
    if not form.is_valid():
        return render(
            request,
            "cases/reports/overview.html",
            {"form": form, "charts": None, "sections": _sections(), "nav": "reports"},
            status=400,
        )
    period = period_of(form, request.user)
    _function, header = figures.FIGURES[figure]
    start, end = form.cleaned_data["start"], form.cleaned_data["end"]
    return exports.csv_response(
        request,
        header=header,
        rows=exports.lazy_rows(lambda: figures.figure_rows(figure, **period)),
        filename=f"{figure}-{start}-{end}.csv",
    )


@login_required
def promises(request):
    if not permissions.can_see_reports(request.user):
        raise PermissionDenied("Reports are for supervisors and admins.")
    today = timezone.localdate()
    form = ReportForm(
        request.GET or {"start": today - timedelta(days=6), "end": today, "group_by": "channel"}
    )
    report = None
    if form.is_valid():
        zone = timezone.get_current_timezone()
        start = datetime.combine(form.cleaned_data["start"], time.min, tzinfo=zone)
        end = datetime.combine(form.cleaned_data["end"] + timedelta(days=1), time.min, tzinfo=zone)
        report = reports.promise_report(
            start=start,
            end=end,
            group_by=form.cleaned_data["group_by"],
            department_ids=permissions.report_department_ids(request.user),
        )
    return render(
        request,
        "reports/promises.html",
        {"form": form, "report": report, "sections": _sections(), "nav": "reports"},
    )
