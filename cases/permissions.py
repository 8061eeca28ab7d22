"""Who may see and do what: one set of rules for pages, the API and websockets.

Roles: an **admin** is a staff user and configures everything; a **supervisor** has a
supervisor membership and acts on every case of the departments they supervise and
may move cases across departments; an **agent** works the cases of their own
departments and the cases they follow or are assigned.
"""

from __future__ import annotations

from django.db.models import Q

from .models import Case, EscalationPath, Membership


def is_admin(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and (user.is_staff or user.is_superuser))


def _memberships(user) -> list[tuple[int, str]]:
    """The user's (department id, role) pairs, cached on the user object for the request."""
    if not (user and user.is_authenticated):
        return []
    cached = getattr(user, "_caseline_memberships", None)
    if cached is None:
        cached = list(Membership.objects.filter(user=user).values_list("department_id", "role"))
        user._caseline_memberships = cached
    return cached


def department_ids(user) -> set[int]:
    """Departments the user belongs to, in any role."""
    return {dept for dept, _ in _memberships(user)}


def supervised_department_ids(user) -> set[int]:
    return {dept for dept, role in _memberships(user) if role == Membership.Role.SUPERVISOR}


def is_supervisor(user) -> bool:
    return bool(supervised_department_ids(user))


def role_of(user) -> str:
    if is_admin(user):
        return "admin"
    if is_supervisor(user):
        return "supervisor"
    return "agent" if department_ids(user) else "none"


def visible_cases_q(user) -> Q:
    """A filter for the cases ``user`` may see."""
    if is_admin(user):
        return Q()
    if not (user and user.is_authenticated):
        return Q(pk__in=[])
    return Q(department_id__in=department_ids(user)) | Q(assignee=user) | Q(followers=user)


def can_view_case(user, case: Case) -> bool:
    if is_admin(user):
        return True
    if not (user and user.is_authenticated):
        return False
    if case.department_id in department_ids(user) or case.assignee_id == user.pk:
        return True
    return case.followers.filter(pk=user.pk).exists()


def can_work_case(user, case: Case) -> bool:
    """Reply, note, claim, change status: members of the owning department (and admins)."""
    return is_admin(user) or case.department_id in department_ids(user) or case.assignee_id == user.pk


def can_assign(actor, case: Case, assignee) -> bool:
    """Supervisors of the case's department assign anyone in it; agents only within their departments."""
    if is_admin(actor):
        return True
    assignee_departments = department_ids(assignee) if assignee is not None else set()
    if case.department_id in supervised_department_ids(actor):
        return assignee is None or case.department_id in assignee_departments
    if case.department_id in department_ids(actor):
        return assignee is None or case.department_id in assignee_departments
    return False


def can_transfer(actor, case: Case, to_department_id: int) -> bool:
    """Supervisors and admins move cases across departments; agents along an escalation path."""
    if is_admin(actor) or case.department_id in supervised_department_ids(actor):
        return True
    if case.department_id not in department_ids(actor):
        return False
    return EscalationPath.objects.filter(
        from_department_id=case.department_id, to_department_id=to_department_id, is_active=True
    ).exists()


def can_merge_customers(user) -> bool:
    """Merging (or unmerging) customers rewrites whose cases are whose: supervisors and admins."""
    return role_of(user) in ("supervisor", "admin")


def can_link_identities(user) -> bool:
    """Link an identity to a customer, accept or dismiss a suggested link: anyone with a role.

    Which customers (and suggestions) they may do it for is which customers they see
    (``cases.selectors.customer_for_page``, the API's ``visible_customers``): an agent who
    sees the customer. A link moves one identity and never merges customers, so it needs
    no supervisor.
    """
    return role_of(user) != "none"


def can_export_customer(user, customer) -> bool:
    """Admins export anyone; supervisors a customer with a case they can see. The bundle is
    complete either way (a subject access request answered in part is not answered)."""
    if is_admin(user):
        return True
    if not is_supervisor(user):
        return False
    return Case.objects.filter(visible_cases_q(user), customer_id=customer.pk).exists()


def can_erase_customer(user) -> bool:
    """Erasure cannot be undone: admins only."""
    return is_admin(user)


def can_merge_cases(user, source: Case, target: Case) -> bool:
    """Merging closes ``source`` and moves its timeline to ``target``: the user works both.

    Working a case implies seeing it, so cases of two customers merge only for someone who
    sees both.
    """
    return can_work_case(user, source) and can_work_case(user, target)


def can_see_reports(user) -> bool:
    """Promise reports: supervisors (for the departments they supervise) and admins (all)."""
    return is_admin(user) or is_supervisor(user)


def report_department_ids(user) -> set[int] | None:
    """The departments a user's reports cover (None: every department)."""
    return None if is_admin(user) else supervised_department_ids(user)


def can_see_topics(user) -> bool:
    """The topics page (what customers write about, week by week): supervisors, for the
    departments they supervise, and admins, for all. There is no product role: product
    people are given a supervisor membership of the departments whose topics they read."""
    return can_see_reports(user)


def topic_department_ids(user) -> set[int] | None:
    """The departments whose topics ``user`` reads (None: every department)."""
    return report_department_ids(user)


def visible_incidents_q(user) -> Q:
    """Incidents ``user`` may see: those on a channel of one of their departments (admins: all)."""
    if is_admin(user):
        return Q()
    return Q(channel__department_id__in=department_ids(user))


def can_configure(user) -> bool:
    """Service promises, breach ladders and business calendars (the desk's settings pages): admins."""
    return is_admin(user)


def can_set_department_target(user, department) -> bool:
    """A department's handling target (the department clock): admins, and its own supervisors."""
    return is_admin(user) or (department is not None and department.pk in supervised_department_ids(user))


def target_department_ids(user) -> set[int] | None:
    """Departments whose handling target ``user`` may set (None: every department)."""
    return None if is_admin(user) else supervised_department_ids(user)


def can_close_incident(user) -> bool:
    return is_admin(user) or is_supervisor(user)


def can_act_on_incident(user, incident) -> bool:
    """The desk's incident screen: the bulk reply and closing are for admins and the supervisors
    of the channel's department; its agents only read (``visible_incidents_q``)."""
    return is_admin(user) or incident.channel.department_id in supervised_department_ids(user)


def offered_canned_replies_q(user) -> Q:
    """Canned replies offered to ``user``: everyone's and their departments' (admins: all)."""
    if is_admin(user):
        return Q()
    return Q(department__isnull=True) | Q(department_id__in=department_ids(user))
