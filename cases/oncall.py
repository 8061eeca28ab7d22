"""The on-call rota: who answers urgent signals for a department, and when.

Supervisors keep the rota of the departments they supervise (admins: every department's);
the person on call now is the one whose shift covers now (``urgent.on_call_now``). Pages go
out at any hour and on any day, whatever the business calendar says.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .errors import NotPermitted, ServiceError
from .models import Department, Membership, OnCallShift
from .permissions import is_admin, supervised_department_ids

# The rota lists shifts ending after now and starting within this many days.
ROTA_DAYS_AHEAD = 60


def rota_department_ids(user) -> set[int] | None:
    """Departments whose rota ``user`` keeps: supervised ones; None for admins (all)."""
    return None if is_admin(user) else supervised_department_ids(user)


def can_keep_rota(user, department_id: int) -> bool:
    ids = rota_department_ids(user)
    return ids is None or department_id in ids


def rota_departments(*, user) -> list[Department]:
    ids = rota_department_ids(user)
    departments = Department.objects.order_by("name")
    return list(departments if ids is None else departments.filter(pk__in=ids))


def rota_shifts(*, user, now: datetime | None = None) -> list[OnCallShift]:
    """Current and coming shifts of the departments ``user`` keeps, soonest first, with
    department and person. One statement."""
    now = now or timezone.now()
    ids = rota_department_ids(user)
    shifts = OnCallShift.objects.filter(ends_at__gt=now, starts_at__lt=now + timedelta(days=ROTA_DAYS_AHEAD))
    if ids is not None:
        shifts = shifts.filter(department_id__in=ids)
    return list(shifts.select_related("department", "user").order_by("starts_at", "id"))


def rota_members(*, departments: list[Department]) -> list[Membership]:
    """Who may be put on call: the members of those departments, with user and department."""
    return list(
        Membership.objects.filter(department__in=departments)
        .select_related("user", "department")
        .order_by("department__name", "user__username")
    )


@transaction.atomic
def shift_add(*, actor, department: Department, user, starts_at: datetime, ends_at: datetime) -> OnCallShift:
    """Put ``user`` on call for ``department``. Only members may be on call, a shift must end
    after it starts; ``ServiceError`` names the field otherwise."""
    if not can_keep_rota(actor, department.pk):
        raise NotPermitted(_("Only the department’s supervisors and admins keep its on-call rota."))
    if not Membership.objects.filter(department=department, user=user).exists():
        raise ServiceError(
            _("%(user)s is not a member of %(department)s.") % {"user": user, "department": department},
            field="user",
        )
    if ends_at <= starts_at:
        raise ServiceError(_("The shift must end after it starts."), field="ends_at")
    return OnCallShift.objects.create(
        department=department, user=user, starts_at=starts_at, ends_at=ends_at, created_by=actor
    )


@transaction.atomic
def shift_remove(*, actor, shift: OnCallShift) -> None:
    if not can_keep_rota(actor, shift.department_id):
        raise NotPermitted(_("Only the department’s supervisors and admins keep its on-call rota."))
    shift.delete()
