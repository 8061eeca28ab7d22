"""The case page: the case it shows, and what its action panel offers.

``case_page`` reads the case and the customer's other cases the viewer may see in one
statement; ``case_actions_context`` gathers the panel's choices (department members,
transfer departments, the escalation path the case would follow, public channels a reply
can move from) for the page and for live pushes alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Case as DbCase
from django.db.models import Exists, F, FilteredRelation, OuterRef, Q, Subquery, Value, When

from customers.models import Identity, IdentitySuggestion

from .. import handoff_selectors, permissions
from ..models import Case, CaseEvent, Department, EscalationPath, Message
from .departments import department_members


def case_for_page(*, user, reference: str) -> Case | None:
    """The case ``reference`` with what its page header shows, or None when ``user`` may not see it.

    Unknown and forbidden look the same to the caller, so pages answer 404 for both.
    """
    case = (
        Case.objects.select_related("customer", "department", "assignee", "last_channel", "origin_channel")
        .filter(reference=reference)
        .first()
    )
    if case is None or not permissions.can_view_case(user, case):
        return None
    return case


OTHER_CASES_LIMIT = 10


@dataclass
class CasePage:
    """The case a page shows and the customer's other cases the viewer may see, newest first."""

    case: Case
    other_cases: list[Case]


def case_page(*, user, reference: str, others: int = OTHER_CASES_LIMIT) -> CasePage | None:
    """:func:`case_for_page` and the customer's other cases that ``user`` may see (the newest
    ``others``), in one statement; None when ``user`` may not see the case.

    The rows are the case itself (whatever the viewer may see: ``can_view_case`` decides
    after) and the same customer's cases the viewer may see, the case first; each read is
    an index read (the reference's unique index, the customer's cases), OR-ed together.
    """
    customer = Subquery(Case.objects.filter(reference=reference).order_by().values("customer_id")[:1])
    # Visibility as a semi-join on the customer's few cases: no DISTINCT over the joined rows, and
    # the OR stays two index reads (reference, customer) instead of a scan.
    visible = Case.objects.filter(permissions.visible_cases_q(user), customer_id=customer).values("pk")
    rows = list(
        Case.objects.filter(Q(reference=reference) | (Q(customer_id=customer) & Q(pk__in=visible)))
        .select_related("customer", "department", "assignee", "last_channel", "origin_channel")
        .annotate(
            is_page_case=DbCase(When(reference=reference, then=Value(1)), default=Value(0)),
            # The live regions' sequence number: the newest case event the page was rendered with,
            # so a reconnecting page asks for a replay from exactly there.
            latest_event_id=Subquery(
                CaseEvent.objects.filter(case_id=OuterRef("pk")).order_by("-id").values("id")[:1]
            ),
            # The customer panel's notice: links waiting for an agent (the partial index of open ones).
            customer_has_suggestions=Exists(
                IdentitySuggestion.objects.filter(
                    customer_id=OuterRef("customer_id"), status=IdentitySuggestion.Status.OPEN
                )
            ),
            awaiting_acceptance=handoff_selectors.awaiting_acceptance(),  # the hand-off banner
        )
        .order_by("-is_page_case", "-created_at", "-id")[: others + 1]
    )
    if not rows or rows[0].reference != reference or not permissions.can_view_case(user, rows[0]):
        return None
    return CasePage(case=rows[0], other_cases=rows[1:])


# --- The case page's choices ---------------------------------------------------------------------


def reply_channels(*, identities: list[Identity]) -> list:
    """The company's active channels on the platforms the customer has an identity on, by platform."""
    from connectors.models import Channel

    kinds = {identity.kind for identity in identities}
    if not kinds:
        return []
    return list(Channel.objects.filter(is_active=True, kind__in=kinds).order_by("kind", "name"))


_PATH_COLUMNS = tuple(field.attname for field in EscalationPath._meta.concrete_fields)


def case_routes(*, user, case: Case) -> tuple[list[Department], EscalationPath | None]:
    """Every department by name (as :func:`all_departments`, whose per-request cache on ``user``
    it fills) and the escalation path ``case`` would follow now, in one statement.

    The path is the one ``escalation.next_path`` picks (active paths out of the case's
    department into an active one, lowest order first, the first whose trigger
    ``escalation.path_matches``); here the paths come LEFT JOINed to their target
    departments instead of from a query of their own.
    """
    from ..escalation import path_matches

    paths_in = FilteredRelation(
        "paths_in", condition=Q(paths_in__from_department_id=case.department_id, paths_in__is_active=True)
    )
    rows = (
        Department.objects.annotate(path=paths_in)
        .annotate(**{f"path_{name}": F(f"path__{name}") for name in _PATH_COLUMNS})
        .order_by("name", "id")
    )
    departments: dict[int, Department] = {}
    paths: list[EscalationPath] = []
    for row in rows:
        department = departments.setdefault(row.pk, row)
        if row.path_id is not None and department.is_active:
            path = EscalationPath(**{name: getattr(row, f"path_{name}") for name in _PATH_COLUMNS})
            path.to_department = department
            paths.append(path)
    paths.sort(key=lambda path: (path.order, path.pk))
    if getattr(user, "_caseline_all_departments", None) is None:
        user._caseline_all_departments = list(departments.values())
    return list(departments.values()), next((path for path in paths if path_matches(path, case)), None)


def public_channels(*, case: Case, timeline: list[Message] | None = None) -> list:
    """The social channels where the customer wrote to us in public on this case (WhatsApp has no
    public side): where a reply can ask them to continue privately."""
    if timeline is None:
        timeline = list(
            Message.objects.filter(case=case, direction=Message.Direction.IN, is_public=True).select_related(
                "channel"
            )
        )
    found = {}
    for message in timeline:
        channel = message.channel
        if (
            message.direction == Message.Direction.IN
            and message.is_public
            and channel is not None
            and channel.is_social
            and channel.kind != "whatsapp"
        ):
            found[channel.pk] = channel
    return list(found.values())


def case_actions_context(*, user, case: Case, timeline: list[Message] | None = None) -> dict:
    """What the case page's action panel offers ``user`` (the page and live pushes render it alike).

    ``timeline``: the case's messages when the caller has them (saves a query)."""

    can_work = permissions.can_work_case(user, case)
    context = {
        "case": case,
        "can_work": can_work,
        "can_take_over": permissions.is_admin(user)
        or case.department_id in permissions.supervised_department_ids(user),
        "statuses": Case.Status.choices,
        "priorities": Case.Priority.choices,
        "members": [],
        "transfer_departments": [],
        "escalation_path": None,
        "public_channels": [],
    }
    if can_work:
        context["members"] = department_members(department_id=case.department_id)
        departments, context["escalation_path"] = case_routes(user=user, case=case)
        context["transfer_departments"] = [
            d for d in departments if d.is_active and d.pk != case.department_id
        ]
        if case.is_open:
            context["public_channels"] = public_channels(case=case, timeline=timeline)
    return context
