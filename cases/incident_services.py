"""Answering and closing an incident: one public reply to everyone caught in a surge.

A surge (:func:`cases.triage.surge_detect`) links many cases to one :class:`Incident`;
each case stays its own. The bulk reply is planned first (:func:`incident_reply_plan`,
which the desk's preview shows) and then sent (:func:`incident_reply`) from the same
plan, so what the preview says is what is sent:

- one reply per customer: a customer with several cases in the incident is answered on
  the one they wrote on last (the others are listed as skipped);
- resolved and closed cases are skipped;
- placeholders in braces are filled per case (``INCIDENT_PLACEHOLDERS``); a brace that
  is not one of them refuses the text, naming it. ``{{`` and ``}}`` write a brace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from string import Formatter

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.models import Identity

from . import permissions, services
from .errors import NotPermitted, ServiceError
from .models import Case, Incident, Message

# What a bulk reply may say in braces; filled from each case (see placeholder_values).
INCIDENT_PLACEHOLDERS = ("first_name", "customer_name", "handle", "reference", "agent_name")


def unknown_placeholders(text: str) -> list[str]:
    """The placeholders of ``text`` that cannot be filled, as written; unbalanced braces are one."""
    try:
        names = [part[1] for part in Formatter().parse(text or "") if part[1] is not None]
    except ValueError:
        return ["(an unmatched { or })"]
    return [f"{{{name}}}" for name in names if name not in INCIDENT_PLACEHOLDERS]


def _first_name(name: str) -> str:
    words = (name or "").split()
    return words[0] if words else ""


def _handle(identity: Identity | None) -> str:
    if identity is None:
        return ""
    return identity.handle or identity.display_name or identity.platform_id


def placeholder_values(*, case: Case, identity: Identity | None, agent) -> dict[str, str]:
    """Each placeholder's text on ``case``, written to ``identity`` by ``agent``.

    A customer without a name is "there" (``Hi {first_name}`` reads "Hi there"), as
    canned replies print them.
    """
    name = case.customer.name
    agent_name = ""
    if agent is not None:
        agent_name = agent.get_short_name() or agent.get_full_name() or agent.get_username()
    return {
        "first_name": _first_name(name) or _("there"),
        "customer_name": name or _("there"),
        "handle": _handle(identity),
        "reference": case.reference,
        "agent_name": agent_name,
    }


@dataclass
class Target:
    """One case the bulk reply goes to, with the identity it is written to and its text."""

    case: Case
    identity: Identity | None
    text: str = ""


@dataclass
class Skipped:
    """A case the bulk reply leaves alone, and why (``closed`` or ``same_customer``)."""

    case: Case
    why: str
    # For ``same_customer``: the case of that customer that is answered instead.
    answered_on: Case | None = None


@dataclass
class ReplyPlan:
    targets: list[Target] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    # References of target cases the author may not work (the reply is then refused).
    refused: list[str] = field(default_factory=list)
    # Targets whose filled text is longer than the channel allows in public.
    too_long: list[tuple[str, int]] = field(default_factory=list)
    limit: int | None = None


def _recency(case: Case) -> tuple:
    stamp = case.last_inbound_at or case.created_at
    return (stamp is not None, stamp, case.pk)


def _reply_identities(incident: Incident, cases: list[Case]) -> dict[int, Identity | None]:
    """Per case, the identity a public reply on the incident's channel goes to: the author of
    the customer's latest public message there (what ``case_reply`` threads under), else the
    customer's first identity on that platform. Two queries, whatever the number of cases."""
    found: dict[int, Identity | None] = {}
    latest = (
        Message.objects.filter(
            case__in=[c.pk for c in cases],
            channel_id=incident.channel_id,
            direction=Message.Direction.IN,
            is_public=True,
        )
        .select_related("identity")
        .order_by("case_id", "-sent_at", "-id")
    )
    for message in latest:
        if message.case_id not in found and message.identity_id is not None:
            found[message.case_id] = message.identity
    missing = {c.customer_id: c.pk for c in cases if c.pk not in found}
    if missing:
        identities = Identity.objects.filter(
            customer_id__in=list(missing), kind=incident.channel.kind
        ).order_by("customer_id", "kind", "handle", "platform_id")
        for identity in identities:
            case_id = missing[identity.customer_id]
            found.setdefault(case_id, identity)
    return found


def split_targets(cases: list[Case]) -> tuple[list[Case], list[Skipped]]:
    """The cases a bulk reply answers (one per customer: the open case they wrote on last), and
    the ones it skips with why, each list by case id. Reads nothing."""
    chosen: dict[int, Case] = {}
    skipped: list[Skipped] = []
    for case in cases:
        if not case.is_open:
            skipped.append(Skipped(case=case, why="closed"))
            continue
        current = chosen.get(case.customer_id)
        if current is None or _recency(case) > _recency(current):
            chosen[case.customer_id] = case
    for case in cases:
        answered = chosen.get(case.customer_id)
        if case.is_open and answered is not None and answered.pk != case.pk:
            skipped.append(Skipped(case=case, why="same_customer", answered_on=answered))
    return sorted(chosen.values(), key=lambda c: c.pk), sorted(skipped, key=lambda s: s.case.pk)


def incident_reply_plan(
    *, incident: Incident, author, text: str, cases: list[Case] | None = None
) -> ReplyPlan:
    """Who the bulk reply ``text`` goes to, what each one reads, and who is skipped and why.

    ``cases``: the incident's cases with their customers, when the caller has them loaded.
    Reads only; :func:`incident_reply` sends what this plans.
    """
    if cases is None:
        cases = list(Case.objects.filter(incidents=incident).select_related("customer").order_by("pk"))
    plan = ReplyPlan(limit=services.TEXT_LIMITS.get(incident.channel.kind))
    answered_cases, plan.skipped = split_targets(cases)
    identities = _reply_identities(incident, answered_cases) if answered_cases else {}
    fill = not unknown_placeholders(text)
    for case in answered_cases:
        identity = identities.get(case.pk)
        body = (
            text.format_map(placeholder_values(case=case, identity=identity, agent=author)).strip()
            if fill
            else text
        )
        plan.targets.append(Target(case=case, identity=identity, text=body))
        if not permissions.can_work_case(author, case):
            plan.refused.append(case.reference)
        if plan.limit and len(body) > plan.limit:
            plan.too_long.append((case.reference, len(body)))
    return plan


def _check(plan: ReplyPlan, text: str, incident: Incident) -> None:
    if not (text or "").strip():
        raise ServiceError(_("A reply cannot be empty."), field="text")
    unknown = unknown_placeholders(text)
    if unknown:
        known = ", ".join("{" + name + "}" for name in INCIDENT_PLACEHOLDERS)
        raise ServiceError(
            _("Unknown placeholder %(unknown)s. Use %(known)s; write {{ and }} for braces.")
            % {"unknown": ", ".join(unknown), "known": known},
            field="text",
        )
    if plan.refused:
        raise NotPermitted(_("You cannot reply on %(cases)s.") % {"cases": ", ".join(plan.refused[:10])})
    if plan.too_long:
        reference, length = plan.too_long[0]
        raise ServiceError(
            _(
                "A public reply on %(platform)s is at most %(limit)s characters; on %(case)s it would be %(n)s."
            )
            % {
                "platform": incident.channel.get_kind_display(),
                "limit": plan.limit,
                "case": reference,
                "n": length,
            },
            field="text",
        )


@transaction.atomic
def incident_reply(*, incident: Incident, author, text: str) -> list[Message]:
    """One public reply on the incident's channel to each customer with an open case in it.

    Planned by :func:`incident_reply_plan` under a lock on the incident, so two
    supervisors sending at once queue the replies one after the other (the second still
    sends: a second update is a decision, not a double click). All or nothing: an
    unknown placeholder, a text too long once filled, or a case ``author`` may not work
    refuses the whole reply. Each reply goes through :func:`cases.services.case_reply`
    (outbox, clocks, case events, live pushes); each case stays its own.
    """
    Incident.objects.select_for_update().filter(pk=incident.pk).first()
    plan = incident_reply_plan(incident=incident, author=author, text=text)
    _check(plan, text, incident)
    return [
        services.case_reply(
            case=target.case,
            author=author,
            channel=incident.channel,
            text=target.text,
            is_public=True,
            identity=target.identity,
        )
        for target in plan.targets
    ]


@transaction.atomic
def incident_close(*, incident: Incident, actor, note: str = "") -> Incident:
    """Close an incident (supervisors and admins), recording who closed it and their note.

    Closing one already closed changes nothing. A later surge on the channel opens a new
    incident (one open incident per channel).
    """
    if not permissions.can_close_incident(actor):
        raise NotPermitted(_("Only supervisors close incidents."))
    Incident.objects.filter(pk=incident.pk, status=Incident.Status.OPEN).update(
        status=Incident.Status.CLOSED,
        closed_at=timezone.now(),
        closed_by=actor,
        close_note=(note or "").strip(),
    )
    incident.refresh_from_db()
    return incident
