"""Departments as a user sees them, and their members.

The user's departments (``user_department_ids``, ``user_departments``), every department
cached on the user for the request (``all_departments``), those a queue may filter on,
and the people a case may be assigned or transferred to.
"""

from __future__ import annotations

from .. import permissions
from ..models import Case, Department, Membership


def user_department_ids(*, user) -> list[int]:
    return sorted(permissions.department_ids(user))


def all_departments(*, user) -> list[Department]:
    """Every department, by name (a short list); one query, cached on the user for the request."""
    cached = getattr(user, "_caseline_all_departments", None)
    if cached is None:
        cached = list(Department.objects.order_by("name"))
        user._caseline_all_departments = cached
    return cached


def user_departments(*, user) -> list[Department]:
    """The departments ``user`` belongs to, by name."""
    ids = permissions.department_ids(user)
    return [department for department in all_departments(user=user) if department.pk in ids] if ids else []


def queue_departments(*, user) -> list[Department]:
    """Departments whose queues ``user`` may filter on: all active ones for admins, else their own."""
    if permissions.is_admin(user):
        return [department for department in all_departments(user=user) if department.is_active]
    return user_departments(user=user)


def department_members(*, department_id: int) -> list:
    """The users of a department (for "assign to"), by name."""
    return [
        membership.user
        for membership in Membership.objects.filter(department_id=department_id, user__is_active=True)
        .select_related("user")
        .order_by("user__first_name", "user__last_name", "user__email")
    ]


def transfer_departments(*, user, case: Case) -> list[Department]:
    """Active departments other than the case's own."""
    return [d for d in all_departments(user=user) if d.is_active and d.pk != case.department_id]
