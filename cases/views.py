"""The agent desk pages, split by job; this module keeps the old names importable.

- ``queue_views``: the queue page;
- ``case_views``: the case page and its actions (``_act``, ``_answer``, ... are shared by
  ``handoff_views`` and ``customer_panel_views``);
- ``customer_views``: the customer page and its actions;
- ``board_views``: the supervisors' board.
"""

from .board_views import board, board_reassign  # noqa: F401
from .case_views import (  # noqa: F401
    _act,
    _answer,
    _case_channels,
    _case_context,
    _case_or_404,
    _composer_context,
    _now_iso,
    _page_or_404,
    _report,
    case_assign,
    case_call,
    case_claim,
    case_detail,
    case_escalate,
    case_live,
    case_monitor,
    case_move_private,
    case_note,
    case_priority,
    case_reply,
    case_respond,
    case_status,
    case_take_over,
    case_transfer,
)
from .customer_views import (  # noqa: F401
    CUSTOMER_FIELDS,
    customer_detail,
    customer_link,
    customer_merge,
    customer_suggestion_accept,
    customer_suggestion_dismiss,
    customer_unmerge,
)
from .queue_views import queue  # noqa: F401
