"""Ingest: one platform message in, on the right case, in one transaction.

``ingest(channel=..., inbound=...)`` turns a connector's ``InboundMessage`` into a
``Message`` on a case. It is idempotent on (channel, external id): a message seen
again (a re-delivery, a replayed event, two workers racing on one message) returns
the message already stored and changes nothing.

Who wrote it: the author's Identity is found by platform kind + id, or created with
a new Customer on first sight; its handle, name, follower count and verified flag are
refreshed from every message.

Which case, in this order (the first rule that finds a case wins):

1. Reply chain: the message it answers (``reply_to_external_id``) on this channel, or
   for e-mail on any channel (Message-IDs are global), and that message's case.
2. Thread keys: a message on this channel whose thread key or platform id is one of
   the inbound ``thread_keys`` (most specific first). E-mail matches platform ids on
   any channel, so a reply known only through ``References`` still threads. A public
   message (a comment under a page post, a quote) matches only its own customer's
   cases: everyone commenting under one post shares the post's thread key.
3. Case reference token (``C-7Q4K2``, any case of letters) in the subject or text:
   that case, whoever its customer is; for a case merged into another (closed, with a
   ``merged`` event naming where it went), the case it was merged into.
3b. Replies that arrived before it (their ``in_reply_to_external_id`` is this message's
   id, on this channel, or any channel for e-mail): their case. A public message joins
   only its own author's early replies' case.
4. The author's customer's most recent case that is open, or was resolved or closed
   within the reopen window of the moment the message was written (so a replayed old
   event threads as it would have on arrival). The window is the channel's the message
   arrived on (``Channel.reopen_window_days``), else ``settings.CASE_REOPEN_WINDOW_DAYS``.
5. Otherwise a new case, routed to the channel's department.

A case found by rules 1-3 may belong to another customer than the author's. Customers
are never merged silently:

- a brand-new identity writing privately (DM, e-mail, call) on a reply chain or with a
  reference token is created on the case's customer, link source ``verified`` (the
  customer moved from a tweet to e-mail with the token we gave them);
- anyone else keeps their own customer, and the message still lands on the case. That
  includes a new identity replying in a *public* thread: anyone can answer a public
  post, so a stranger chiming in on a customer's thread is not that customer.
Either decision is written in the reason of the message's CaseEvent. An e-mail address
or phone number in the message that is not the customer's on file (another customer's
identity, or nobody's) is recorded as an ``IdentitySuggestion`` for the agent
(``customers.services``), never linked or merged by itself.

Out of order: a reply can arrive before the message it answers (platforms and mail
servers deliver late and out of order). We neither hold the reply back nor guess: it is
stored at once, on the case the rules above give it, keeping the parent's platform id
(``in_reply_to_external_id``, reply_to empty; indexed by ``message_orphan_reply_idx``).
When the parent arrives, it finds its early replies (rule 3b when it has no case of its
own) and adopts them: their ``reply_to`` is set, and a reply stored on another case than
the parent's is moved to the parent's case, with a ``merged`` CaseEvent on both cases
naming the moved messages; a case left with no message is closed, its status event
saying where they went. So a reply never waits in limbo, and the two cases that an
out-of-order pair opened become one, on the record. The same for X replies, WhatsApp
``context.id`` and e-mail ``In-Reply-To``.

Echoes (messages our own account wrote, ``is_echo``) are matched to the outbound
message we sent (same channel + platform id, or a queued one to the same person with
the same text that has no platform id yet) and mark it sent. An echo we never sent
(written in the platform's own app) is recorded as an outbound message on the
recipient's case; an echo we cannot place on any case is not stored.

Platforms' news about our outbound messages (``DeliveryUpdate``) is applied by
``delivery_update_apply``; news about a stored message that came after it
(``MessageUpdate``: a call's recording) by ``message_update_apply``.

Batches: ``IngestContext`` (see its docstring) lets the inbox ingest a batch of events
with the look-ups shared. A new conversation (its new customer and identity, case and
message) is written in one statement (``config.rows.insert_linked``), or in a batch held
back with the chunk's others and written a table at a time (``_PendingRows``), and the hot
look-ups are compiled once (``config.lookups.Prepared``): a message of a batch costs fewer
than two statements.

The package, by job. This module re-exports the public names and those other modules and
tests use, as ``cases.ingest.<name>``; to replace a name in a test, patch the submodule
that uses it (``cases.ingest.inbound._existing``), not this one.


- ``inbound``: ``ingest`` itself, the author's identity and the write of a message on its
  case (``_store``);
- ``threading``: the rules above that find a message's case (reply chain, thread keys,
  reference token, early replies, reopen window) and the case lock they take;
- ``batch``: ``IngestContext`` and the batch writer ``_PendingRows``;
- ``echo``: echoes of our own messages;
- ``updates``: ``delivery_update_apply`` and ``message_update_apply``.
"""

from .batch import IngestContext, _existing, _identity_key, _Orphan, _PendingRows  # noqa: F401
from .echo import ECHO_MATCH_WINDOW, _ingest_echo  # noqa: F401
from .inbound import INBOUND_KINDS, _ingest, _ingest_inbound, _store, _validate, ingest  # noqa: F401
from .threading import (  # noqa: F401
    GLOBAL_ID_PLATFORMS,
    MAX_MERGE_HOPS,
    MAX_THREAD_KEYS,
    REFERENCE_RE,
    _adopt_early_replies,
    _early_replies_case,
    _Found,
    _lock,
    _merge_target,
    _parent,
    _recent_case,
    _thread,
    _thread_key,
)
from .updates import _DELIVERY_RANK, delivery_update_apply, message_update_apply  # noqa: F401
