"""The configuration audit trail: who changed which setting, when, from what to what.

Changes to the models that decide how cases are routed and promised (departments,
memberships and roles, channels, service promises, calendars, escalation paths, triage
settings, canned replies, integrator webhooks, API tokens, staff flags) are recorded by
django-auditlog as ``LogEntry`` rows holding each changed field's before and after value.
The list is ``AUDITLOG_INCLUDE_TRACKING_MODELS`` in ``config.settings``.

The actor is read when the change is saved, not when the request starts: API requests
authenticate inside the view (token or session), so by then ``request.user`` is the
real caller. Changes made by the system (seeding, migrations, sweeps) have no actor.
"""

from __future__ import annotations

from auditlog.middleware import AuditlogMiddleware
from django.utils.functional import SimpleLazyObject


def _caller(request):
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


class ConfigAuditMiddleware(AuditlogMiddleware):
    """auditlog's middleware, with the actor looked up at save time (see the module docstring)."""

    @staticmethod
    def _get_actor(request):
        return SimpleLazyObject(lambda: _caller(request))
