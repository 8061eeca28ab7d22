"""The search box's results page (``/desk/search/?q=...``): a thin view over :mod:`cases.search`."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from . import search as desk_search
from .selectors import QueueCursor


class SearchForm(forms.Form):
    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=desk_search.SEARCH_MAX_LENGTH,
        error_messages={
            "max_length": _("Search: at most %(limit_value)d characters are searched; shorten it.")
        },
    )
    # The keyset cursor of an older page of messages (the page's own "Older messages" link).
    before = forms.CharField(required=False, max_length=64)

    def clean_before(self) -> QueueCursor | None:
        raw = self.cleaned_data.get("before") or ""
        if not raw:
            return None
        try:
            return QueueCursor.decode(raw)
        except ValueError:
            raise forms.ValidationError(
                gettext("Older messages: the link is broken; search again from the first page."),
                code="invalid",
            ) from None


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET)
    results = None
    if form.is_valid():
        q = form.cleaned_data["q"]
        before = form.cleaned_data["before"]
        full_reference = before is None and desk_search.is_full_reference(q)
        if full_reference:
            # A reference typed in full opens the case itself when the user may see it.
            case = desk_search.reference_case(user=request.user, q=q)
            if case is not None:
                return redirect("desk:case", reference=case.reference)
        results = desk_search.desk_search(
            user=request.user, q=q, before=before, with_reference=not full_reference
        )
    return render(
        request,
        "cases/search/results.html",
        {"form": form, "results": results, "search_q": request.GET.get("q", "")[:200]},
    )
