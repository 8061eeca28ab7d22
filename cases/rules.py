"""Permission rules for hand-overs and bulk reassignment, built on :mod:`cases.permissions`.

Checked in the services, so pages, the API and websockets obey the same rules.
"""

from __future__ import annotations

from .models import Case, Department
from .permissions import department_ids, is_admin, supervised_department_ids


def can_hand_back(actor, case: Case) -> bool:
    """Members of the department that received a case may hand it back where it came from."""
    return is_admin(actor) or case.department_id in department_ids(actor)


def can_accept(actor, case: Case) -> bool:
    """Members of the receiving department accept a hand-over."""
    return is_admin(actor) or case.department_id in department_ids(actor)


def can_reassign(actor, case: Case, *, to_department: Department | None, assignee) -> bool:
    """Supervisors of the case's department move it to any department; agents reassign within theirs.

    Whoever acts, an assignee must be a member of the department the case ends up in.
    """
    target = to_department.pk if to_department is not None else case.department_id
    if assignee is not None and target not in department_ids(assignee):
        return False
    if is_admin(actor):
        return True
    if target != case.department_id:
        return case.department_id in supervised_department_ids(actor)
    return case.department_id in department_ids(actor)
