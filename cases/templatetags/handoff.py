"""The case page's hand-over banner: rendered for the page, its htmx answers and live pushes alike."""

from __future__ import annotations

from django import template

from cases import handoff_selectors

register = template.Library()


@register.inclusion_tag("cases/handoff/banner.html", takes_context=True)
def handoff_banner(context) -> dict:
    """The banner of ``case`` for ``user`` (both from the context): the waiting hand-over, and
    Accept / Hand back for those the services let do it. A refused hand-back form comes back
    as ``handback_form`` with its errors."""
    case = context["case"]
    user = context.get("user")
    handoff = handoff_selectors.pending_handoff(case=case)
    return {
        "case": case,
        "handoff": handoff,
        "form": context.get("handback_form"),
        "csrf_token": context.get("csrf_token"),
        **handoff_selectors.handoff_actions(user=user, case=case, handoff=handoff),
    }
