"""API views: read endpoints are a selector plus a filterset; each action validates its input,
calls one service and answers with the updated object. Rules come from ``cases.permissions``.

The package, by noun; this module re-exports every view as ``cases.api.views.<name>``
(``cases/api/urls.py`` routes them from here):

- ``base``: ``ApiMixin`` and what every endpoint shares, and ``not_found``;
- ``customers``: customers, identities and identity suggestions;
- ``cases``: cases and their actions, timelines, messages and case events;
- ``config``: configuration rows;
- ``reports``: incidents and the promise report;
- ``integrations``: personal API tokens and outbound webhooks.
"""

from .base import (  # noqa: F401
    WRITE_METHODS,
    ApiMixin,
    _valid,
    not_found,
)
from .cases import (  # noqa: F401
    CaseEventViewSet,
    CaseTimelineView,
    CaseViewSet,
    MessageViewSet,
    _case_action,
)
from .config import (  # noqa: F401
    CalendarViewSet,
    CannedReplyViewSet,
    ChannelViewSet,
    ConfigViewSet,
    DepartmentViewSet,
    EscalationPathViewSet,
    MembershipViewSet,
    ServicePromiseViewSet,
)
from .customers import (  # noqa: F401
    CustomerSuggestionsView,
    CustomerViewSet,
    IdentitySuggestionViewSet,
    IdentityViewSet,
    SuggestionRefused,
    _decide_suggestion,
)
from .integrations import (  # noqa: F401
    ApiTokenViewSet,
    WebhookDeliveryListView,
    WebhookSubscriptionViewSet,
)
from .reports import (  # noqa: F401
    FigureReportView,
    IncidentViewSet,
    PromiseReportView,
)
