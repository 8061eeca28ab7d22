"""Canned replies: prepared answers with placeholders, filled from the case and the agent.

A body such as ``Hi {customer_name}, your case {reference} is with {agent_name}.`` is
filled when an agent inserts it into a reply; the agent edits the result before sending.
Braces that are not a placeholder are written doubled (``{{`` and ``}}``).
"""

from __future__ import annotations

from string import Formatter

from django.db.models import Q

from .models import CANNED_PLACEHOLDERS, CannedReply, Case


def unknown_placeholders(body: str) -> list[str]:
    """The placeholders in ``body`` that cannot be filled, as written (``{name}``); empty when all are known.

    Unbalanced braces count as one unknown placeholder, so an admin hears about them
    when saving instead of an agent when inserting.
    """
    try:
        fields = [field for _, field, spec, conversion in Formatter().parse(body or "") if field is not None]
    except ValueError:
        return ["(an unmatched { or })"]
    return [f"{{{field}}}" for field in fields if field not in CANNED_PLACEHOLDERS]


def placeholder_values(*, case: Case, agent) -> dict[str, str]:
    """What each placeholder stands for on ``case``, written by ``agent``."""
    customer = case.customer
    agent_name = ""
    if agent is not None:
        agent_name = agent.get_short_name() or agent.get_full_name() or agent.get_username()
    return {
        "customer_name": customer.name or "there",
        "reference": case.reference,
        "agent_name": agent_name,
    }


def canned_render(*, reply: CannedReply, case: Case, agent) -> str:
    """``reply``'s body with its placeholders filled; an unknown placeholder is left as written."""
    values = placeholder_values(case=case, agent=agent)
    if unknown_placeholders(reply.body):
        out = reply.body
        for name, value in values.items():
            out = out.replace("{" + name + "}", value)
        return out
    return reply.body.format_map(values)


def canned_for_case(*, case: Case) -> list[CannedReply]:
    """Active canned replies offered on ``case``: its department's and everyone's, by title."""
    return list(
        CannedReply.objects.filter(is_active=True)
        .filter(Q(department__isnull=True) | Q(department_id=case.department_id))
        .order_by("title", "id")
    )
