"""The desk's channel health screens: every channel's open health alerts, and one channel's
traffic (last inbound and outbound, the last hour's errors, its alerts). Supervisors see their
departments' channels, admins every channel. Reads through :mod:`cases.health`."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from connectors.models import Channel

from . import health
from .permissions import is_admin, supervised_department_ids


def health_department_ids(user) -> set[int] | None:
    """Departments whose channels' health ``user`` reads: supervised ones; None for admins (all)."""
    if is_admin(user):
        return None
    ids = supervised_department_ids(user)
    if not ids:
        raise PermissionDenied("Channel health is for supervisors and admins.")
    return ids


@login_required
@require_GET
def health_list(request: HttpRequest) -> HttpResponse:
    ids = health_department_ids(request.user)
    channels = Channel.objects.filter(is_active=True).select_related("department").order_by("kind", "name")
    if ids is not None:
        channels = channels.filter(department_id__in=ids)
    return render(
        request,
        "cases/health/list.html",
        {
            "nav": "health",
            "channels": list(channels),
            "alerts": health.open_health_alerts(department_ids=ids),
        },
    )


@login_required
@require_GET
def channel_health(request: HttpRequest, pk: int) -> HttpResponse:
    ids = health_department_ids(request.user)
    channel = Channel.objects.select_related("department").filter(pk=pk).first()
    if channel is None or (ids is not None and channel.department_id not in ids):
        raise Http404("No such channel.")
    return render(
        request,
        "cases/health/channel.html",
        {"nav": "health", "health": health.channel_health(channel=channel)},
    )
