"""Every write to a case goes through here.

Each service is one transaction: it locks the case row where concurrent changes
could collide, writes its CaseEvent in the same transaction, and publishes a live
event only after commit.

The package, by noun; this module re-exports every name as ``cases.services.<name>``
(to replace one in a test, patch the submodule that looks it up):

- ``events``: what every service shares: the audit trail row (``record_event``), the
  after-commit announcement (``_announce``, ``_case_groups``), the row lock and reasons;
- ``cases``: opening a case, assigning, claiming, transferring, status and priority;
- ``messages``: the timeline: messages in and out (``message_add``, ``case_apply_message``),
  replies, notes, logged calls, delivery updates, and moving a public conversation to a
  private channel;
- ``customers``: the cases' part of merging and unmerging customers;
- ``merge``: merging cases and splitting a message off into a new case.
"""

from .cases import (  # noqa: F401
    case_assign,
    case_build,
    case_claim,
    case_open,
    case_set_priority,
    case_set_status,
    case_transfer,
)
from .customers import (  # noqa: F401
    customer_merge,
    customer_unmerge,
)
from .events import (  # noqa: F401
    _announce,
    _case_groups,
    _locked,
    _now,
    _require_reason,
    _user_label,
    case_changed_event,
    record_event,
)
from .merge import (  # noqa: F401
    _messages_moved_events,
    _thread_from,
    _timeline_recompute,
    case_merge,
    message_split,
)
from .messages import (  # noqa: F401
    DM_LINKS,
    PRIVATE_KINDS,
    TEXT_LIMITS,
    _news_for,
    _outbound_kind,
    _private_email_channel,
    _reply_target,
    call_log,
    case_apply_message,
    case_move_to_private,
    case_reply,
    message_add,
    message_delivery_update,
    move_to_private_text,
    note_add,
)
