"""CSV downloads of the desk's other lists (the queue's is in ``cases.queue_views``): the customers
a search finds and the incidents list. Thin, over :mod:`cases.exports`."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from . import exports
from .search_views import SearchForm


def _stamp() -> str:
    return timezone.localtime().strftime("%Y%m%d-%H%M")


@login_required
@require_GET
def customers_export(request: HttpRequest) -> HttpResponse:
    """Every customer the search box finds for ``q`` (the results page shows the first ten)."""
    form = SearchForm(request.GET)
    if not form.is_valid():
        return HttpResponse(
            " ".join(e for errors in form.errors.values() for e in errors),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    return exports.csv_response(
        request,
        header=exports.CUSTOMERS_HEADER,
        rows=exports.customer_rows(user=request.user, q=form.cleaned_data["q"]),
        filename=f"customers-{_stamp()}.csv",
    )


@login_required
@require_GET
def incidents_export(request: HttpRequest) -> HttpResponse:
    """The incidents page's list (open incidents and those of the last 30 days), every row of it."""
    return exports.csv_response(
        request,
        header=exports.INCIDENTS_HEADER,
        rows=exports.incident_rows(user=request.user),
        filename=f"incidents-{_stamp()}.csv",
    )
