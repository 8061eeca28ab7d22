"""What the API shows and accepts. Output serializers read selector rows (no queries of their
own); input serializers validate one action's arguments before a service runs it.

Configuration rows (departments, memberships, channels, calendars, promises, paths) are
plain records without side effects; their serializers check the model's own rules
(``full_clean``: field validators and named constraints) so a bad row is a 400 naming
the field, never a database error.

The package, by noun; this module re-exports every serializer as
``cases.api.serializers.<name>``:

- ``common``: the error shape and the summaries other serializers nest;
- ``customers``: customers, identities and identity suggestions;
- ``cases``: cases, messages, attachments and case events;
- ``case_actions``: the inputs of the actions on a case;
- ``config``: configuration rows;
- ``reports``: incidents and the promise report;
- ``integrations``: API tokens and outbound webhooks.
"""

from .case_actions import (  # noqa: F401
    REASON,
    AcceptInputSerializer,
    AssignInputSerializer,
    BulkReassignInputSerializer,
    CallInputSerializer,
    CaseListSerializer,
    CaseMergeInputSerializer,
    DraftLockSerializer,
    EmptyInputSerializer,
    EscalateInputSerializer,
    MoveToPrivateInputSerializer,
    NoteInputSerializer,
    PriorityInputSerializer,
    ReasonInputSerializer,
    ReplyInputSerializer,
    StatusInputSerializer,
    TakeOverInputSerializer,
    TransferInputSerializer,
)
from .cases import (  # noqa: F401
    AttachmentSerializer,
    CaseDetailSerializer,
    CaseEventSerializer,
    CaseSerializer,
    MessageSerializer,
)
from .common import (  # noqa: F401
    CustomerSummarySerializer,
    ErrorDetailSerializer,
    ErrorSerializer,
    NamedSummarySerializer,
    UserSummarySerializer,
)
from .config import (  # noqa: F401
    ENV_NAME,
    HHMM,
    PROMISE_TARGETS,
    SECRET_ROLE,
    CalendarSerializer,
    CannedReplyFilledListSerializer,
    CannedReplyFilledSerializer,
    CannedReplySerializer,
    ChannelSerializer,
    DepartmentSerializer,
    EscalationPathSerializer,
    MembershipSerializer,
    ModelRulesMixin,
    ServicePromiseSerializer,
    _django_errors,
)
from .customers import (  # noqa: F401
    CustomerMergeInputSerializer,
    CustomerSerializer,
    CustomerUnmergeInputSerializer,
    IdentityLinkInputSerializer,
    IdentitySerializer,
    IdentitySuggestionSerializer,
    SuggestedIdentitySerializer,
)
from .integrations import (  # noqa: F401
    ApiTokenCreatedSerializer,
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    WebhookDeliverySerializer,
    WebhookSecretSerializer,
    WebhookSubscriptionCreatedSerializer,
    WebhookSubscriptionSerializer,
)
from .reports import (  # noqa: F401
    FigureQuerySerializer,
    FigureSerializer,
    IncidentReplyInputSerializer,
    IncidentSerializer,
    PromiseReportSerializer,
    ReportQuerySerializer,
    ReportRowSerializer,
    report_row,
)
