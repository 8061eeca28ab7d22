"""The supervisors' report page: thin, over cases.reports."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils import timezone

from . import permissions, reports


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


def _default_period() -> dict:
    today = timezone.localdate()
    return {"start": today - timedelta(days=6), "end": today, "group_by": "channel"}


@login_required
def promises(request):
    if not permissions.can_see_reports(request.user):
        raise PermissionDenied("Reports are for supervisors and admins.")
    form = ReportForm(request.GET or _default_period())
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
    return render(request, "reports/promises.html", {"form": form, "report": report, "nav": "reports"})
