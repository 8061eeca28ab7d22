"""Reads that more than one caller needs; each owns its joins.

The package, by the job a reader looks for; this module re-exports every name as
``cases.selectors.<name>`` (to replace one in a test, patch the submodule that looks it up):

- ``queue``: the desk queues: tabs, keyset paging (``QueueCursor``), queue rows, and the
  same rules on one row in memory for live updates (``queue_match``, ``live_queue_rows``);
- ``departments``: the user's departments and their members;
- ``search``: the desk search (references, identities, names, words);
- ``case_page``: the case page: its case, the customer's other cases, and the action panel's
  choices (members, transfers, escalation path, public channels);
- ``timeline``: the case timeline and the links taken from customers' payloads (``safe_url``);
- ``live``: what live pushes reload (one case, one message) and whether a page missed events;
- ``customers``: the customer page: cases, identities, suggestions and merges;
- ``board``: the supervisor board: open work per department and agent, cases to reassign.
"""

from .board import (  # noqa: F401
    BOARD_CASES_LIMIT,
    BOARD_ROW_FIELDS,
    WAITING_Q,
    BoardRow,
    BoardStats,
    _board_counts,
    _board_figures,
    _waiting_since,
    board_agent_rows,
    board_cases,
    board_department_rows,
    board_departments,
    board_stats,
    reassign_targets,
)
from .case_page import (  # noqa: F401
    _PATH_COLUMNS,
    OTHER_CASES_LIMIT,
    CasePage,
    case_actions_context,
    case_for_page,
    case_page,
    case_routes,
    public_channels,
    reply_channels,
)
from .customers import (  # noqa: F401
    CUSTOMER_CASES_LIMIT,
    CUSTOMER_SUGGESTIONS_LIMIT,
    CustomerMerges,
    customer_cases,
    customer_for_page,
    customer_identities_with_provenance,
    customer_merges,
    customer_suggestion,
    customer_suggestions,
    identity_for_link,
)
from .departments import (  # noqa: F401
    all_departments,
    department_members,
    queue_departments,
    transfer_departments,
    user_department_ids,
    user_departments,
)
from .live import (  # noqa: F401
    case_changed_since,
    incident_departments,
    live_case,
    live_message,
    live_seq,
    queue_changed_since,
)
from .queue import (  # noqa: F401
    NO_DUE,
    QUEUE_PAGE_SIZE,
    QUEUE_ROW_COLUMNS,
    QUEUE_VIEWS,
    SORT_ID_SPAN,
    WORK_STATUSES,
    QueueCursor,
    QueuePage,
    QueueRow,
    QueueWindow,
    _after,
    _department_scope,
    _last_identity_label,
    _opening_words,
    _queue_row_from_values,
    _work_scope,
    case_queue,
    case_queue_page,
    live_queue_rows,
    person_name,
    queue_due,
    queue_key,
    queue_match,
    queue_row,
    user_has_open_cases,
    user_name,
    work_case_ids,
)
from .search import (  # noqa: F401
    EMAIL_RE,
    PHONE_RE,
    REFERENCE_RE,
    SEARCH_CANDIDATES,
    SEARCH_MAX_LENGTH,
    SEARCH_SCAN_ROWS,
    _identity_customers,
    _search_parts,
    search_candidates,
    search_q,
    search_reference,
)
from .timeline import (  # noqa: F401
    _ATTACHMENT_COLUMNS,
    AttachmentLink,
    _attachment_link,
    _with_links,
    _with_profile_links,
    case_page_timeline,
    case_timeline,
    customer_identities,
    safe_url,
)
