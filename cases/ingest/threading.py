"""Threading: the rules that find the case a message continues (rules 1-4 and 3b of the
package docstring).

The reply chain (``_parent``), thread keys and the case reference token (``_thread``,
following merged cases with ``_merge_target``), the early replies of a message whose
parent arrived late (``_early_replies_case``, and ``_adopt_early_replies`` joining them
to it), the customer's recent case within the reopen window (``_recent_case``), and the
case row lock the rules take (``_lock``). ``_thread_key`` is the key a stored message is
threaded by.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from channels_app.publish import publish_on_commit
from config.lookups import Prepared
from connectors.base import InboundMessage

from .. import services, triage
from ..models import REFERENCE_PATTERN, Case, CaseEvent, Message
from .batch import IngestContext, _Orphan

REFERENCE_RE = re.compile(rf"\bC-({REFERENCE_PATTERN})\b", re.IGNORECASE)
# Platforms whose message ids are global, so a reply can be matched across channels.
GLOBAL_ID_PLATFORMS = frozenset({"email"})
# How many thread keys are looked at (long e-mail threads carry dozens of References).
MAX_THREAD_KEYS = 50


@dataclass
class _Found:
    """Where threading put a message, and by which rule."""

    case: Case
    rule: str  # reply | thread | reference | early_reply | recent | new
    parent: Message | None = None
    # The case row is already locked by the query that found it (or the case is new).
    locked: bool = False


# The inbox's look-ups run for nearly every message: compiled once (config.lookups).
_locked_case = Prepared(
    lambda pk, *, nowait: (
        Case.objects.select_for_update(of=("self",), nowait=nowait)
        .select_related("customer")
        .filter(pk=pk)[:1]
    )
)


def _lock(case: Case, *, nowait: bool = False) -> Case:
    locked = _locked_case.first(case.pk, nowait=nowait)
    if locked is None:
        raise Case.DoesNotExist(f"Case {case.pk} is not stored.")
    return locked


def _thread(
    channel, inbound: InboundMessage, ctx: IngestContext, *, author_customer_id: int | None
) -> _Found | None:
    """Rules 1-3 of the module docstring: the case this message continues, if any.

    The reply-chain and reference look-ups lock the case row they find, in the same query.
    Rows of the batch not written yet (``ctx.pending``) that a look-up could find are
    written first.
    """
    nowait = ctx.batch
    pending = ctx.pending
    global_ids = inbound.platform in GLOBAL_ID_PLATFORMS
    if inbound.reply_to_external_id:
        if inbound.reply_to_external_id in pending.message_keys:
            ctx.flush_rows()
        parent = _parent(
            channel, inbound.reply_to_external_id, global_ids=global_ids, lock=True, nowait=nowait
        )
        if parent is not None:
            return _Found(case=parent.case, rule="reply", parent=parent, locked=True)

    keys = list(dict.fromkeys(k for k in inbound.thread_keys if k))[:MAX_THREAD_KEYS]
    if keys:
        if pending.message_keys.intersection(keys):
            ctx.flush_rows()
        match = Q(channel=channel, thread_key__in=keys)
        match |= Q(external_id__in=keys) if global_ids else Q(channel=channel, external_id__in=keys)
        candidates = Message.objects.filter(match)
        if inbound.is_public:
            # Everyone's comments under one public post share its thread key: a public
            # message continues only its own author's thread (see rule 2).
            candidates = candidates.filter(case__customer_id=author_customer_id)
        rows = candidates.order_by("-id").values_list("case_id", "thread_key", "external_id")[:200]
        rank = {key: i for i, key in enumerate(keys)}
        best = None
        for case_id, thread_key, external_id in rows:
            score = min(rank.get(thread_key, len(keys)), rank.get(external_id, len(keys)))
            if best is None or score < best[0]:
                best = (score, case_id)
        if best is not None:
            return _Found(case=_lock(Case(pk=best[1]), nowait=nowait), rule="thread", locked=True)

    tokens = list(
        dict.fromkeys(
            "C-" + token.upper() for token in REFERENCE_RE.findall(f"{inbound.subject}\n{inbound.text}")
        )
    )
    if tokens:
        if pending.references.intersection(tokens):
            ctx.flush_rows()
        by_reference = {
            c.reference: c
            for c in Case.objects.select_for_update(of=("self",), nowait=nowait)
            .select_related("customer")
            .filter(reference__in=tokens)
            .order_by("pk")
        }
        for token in tokens:
            if token in by_reference:
                case = _merge_target(by_reference[token], nowait=nowait)
                return _Found(case=case, rule="reference", locked=True)
    return None


MAX_MERGE_HOPS = 5


def _merge_target(case: Case, *, nowait: bool = False) -> Case:
    """``case``, or for a case merged away the (locked) case its conversation lives on now,
    following a chain of merges. Only closed cases are looked at: one query for those."""
    for _ in range(MAX_MERGE_HOPS):
        if case.status != Case.Status.CLOSED:
            return case
        target_id = (
            CaseEvent.objects.filter(case_id=case.pk, kind=CaseEvent.Kind.MERGED, before__case=case.pk)
            .order_by("-id")
            .values_list("after__case", flat=True)
            .first()
        )
        if not target_id or target_id == case.pk:
            return case
        case = _lock(Case(pk=target_id), nowait=nowait)
    return case


def _parent(
    channel, external_id: str, *, global_ids: bool, lock: bool = False, nowait: bool = False
) -> Message | None:
    """The message with platform id ``external_id`` on ``channel`` (any channel for global ids),
    with its case and customer; ``lock`` also locks the case row."""
    parent = _parent_on_channel.first(channel.pk, external_id, lock=lock, nowait=nowait)
    if parent is None and global_ids:
        parent = _parent_anywhere.first(external_id, lock=lock, nowait=nowait)
    return parent


# A parent message is wanted for its ids and its case: its content (an e-mail's HTML can be
# hundreds of kilobytes, on every reply in the thread) stays in the database.
_PARENT_CONTENT = ("subject", "text", "html", "quoted_text", "delivery_error", "triage")


def _parents(*, lock: bool, nowait: bool):
    rows = Message.objects.select_related("case__customer").defer(*_PARENT_CONTENT)
    return rows.select_for_update(of=("case",), nowait=nowait) if lock else rows


# A look-up of one message by channel and platform id (unique when the id is set) has no
# ORDER BY: Django pairs every selected column with the ordering when it compiles one.
_parent_on_channel = Prepared(
    lambda channel_id, external_id, *, lock, nowait: (
        _parents(lock=lock, nowait=nowait)
        .filter(channel_id=channel_id, external_id=external_id)
        .order_by()[:1]
    )
)
_parent_anywhere = Prepared(
    lambda external_id, *, lock, nowait: (
        _parents(lock=lock, nowait=nowait).filter(external_id=external_id).order_by("id")[:1]
    )
)


def _recent_case(
    customer_id: int, *, at: datetime, channel, lock: bool = False, nowait: bool = False
) -> Case | None:
    """Rule 4: the customer's latest case that is open or ended within ``channel``'s reopen
    window (the site-wide one without a channel) of ``at``."""
    at = min(at, timezone.now())
    window = (
        channel.reopen_window if channel is not None else timedelta(days=settings.CASE_REOPEN_WINDOW_DAYS)
    )
    return _recent_cases.first(customer_id, at - window, lock=lock, nowait=nowait)


def _recent_cases_since(customer_id: int, cutoff: datetime, *, lock: bool, nowait: bool):
    cases = Case.objects.select_related("customer")
    if lock:
        cases = cases.select_for_update(of=("self",), nowait=nowait)
    return (
        cases.alias(ended_at=Coalesce("closed_at", "resolved_at"))
        .filter(customer_id=customer_id)
        .filter(
            Q(status__in=Case.OPEN_STATUSES)
            | Q(status__in=[Case.Status.RESOLVED, Case.Status.CLOSED], ended_at__gte=cutoff)
        )
        .order_by(F("last_inbound_at").desc(nulls_last=True), "-id")[:1]
    )


_recent_cases = Prepared(_recent_cases_since)


# --- replies that arrive before their parent --------------------------------------------------


def _early_replies(ctx: IngestContext, channel, *, platform: str, external_id: str) -> list[_Orphan]:
    global_ids = platform in GLOBAL_ID_PLATFORMS
    return [o for o in ctx.orphans(external_id) if global_ids or o.channel_id == channel.pk]


def _early_replies_case(
    channel, inbound: InboundMessage, ctx: IngestContext, *, author_customer_id: int | None
) -> _Found | None:
    """Rule 3b: a message that found no case of its own joins the case of its replies that
    arrived before it. A public post only joins its own author's early replies' case."""
    orphans = _early_replies(ctx, channel, platform=inbound.platform, external_id=inbound.external_id)
    if not orphans:
        return None
    if any(o.case_id in ctx.pending.case_ids for o in orphans):
        ctx.flush_rows()
    cases = Case.objects.select_for_update(of=("self",), nowait=ctx.batch).select_related("customer")
    cases = cases.filter(pk__in=sorted({o.case_id for o in orphans}))
    if inbound.is_public:
        cases = cases.filter(customer_id=author_customer_id)
    case = cases.order_by("pk").first()
    return _Found(case=case, rule="early_reply", locked=True) if case is not None else None


def _adopt_early_replies(parent: Message, inbound: InboundMessage, ctx: IngestContext) -> None:
    """Point replies that arrived before ``parent`` at it, and join them to its case.

    A reply stored on another case moves to the parent's case (locked by this
    transaction), with a ``merged`` CaseEvent on both cases; a case left with no message
    is closed, its event saying why.
    """
    orphans = _early_replies(ctx, parent.channel, platform=inbound.platform, external_id=parent.external_id)
    if not orphans:
        return
    ctx.flush_rows()  # the early replies, or the parent and its case, may not be written yet
    Message.objects.filter(pk__in=[o.message_id for o in orphans], reply_to__isnull=True).update(
        reply_to=parent
    )
    ctx.adopted(parent.external_id)
    old_case_of = {o.message_id: o.case_id for o in orphans if o.case_id != parent.case_id}
    if not old_case_of:
        return
    ctx.flush_events()
    case = parent.case
    moved = list(
        Message.objects.select_related("channel").filter(pk__in=old_case_of).order_by("sent_at", "pk")
    )
    Message.objects.filter(pk__in=old_case_of).update(case=case)
    for message in moved:
        services.case_apply_message(
            case,
            direction=message.direction,
            kind=message.kind,
            channel=message.channel,
            at=message.sent_at,
            call_duration=message.call_duration,
        )
    case.save()
    by_case: dict[int, list[int]] = defaultdict(list)
    for message in moved:
        by_case[old_case_of[message.pk]].append(message.pk)
    events, emptied = [], []
    for old_case in Case.objects.select_for_update().filter(pk__in=sorted(by_case)).order_by("pk"):
        moved_ids = by_case[old_case.pk]
        reason = (
            f"{len(moved_ids)} message{'s' if len(moved_ids) != 1 else ''} answering {parent.external_id} "
            f"arrived before it and opened {old_case.reference}; joined to {case.reference}, the case "
            "of the message they answer."
        )
        for on in (old_case, case):
            events.append(
                CaseEvent(
                    case=on, kind=CaseEvent.Kind.MERGED, reason=reason, message=parent,
                    before={"case": old_case.pk, "messages": moved_ids}, after={"case": case.pk},
                )
            )  # fmt: skip
        if not old_case.messages.exists():
            emptied.append((old_case, reason))
    CaseEvent.objects.bulk_create(events)
    for old_case, reason in emptied:
        services.case_set_status(case=old_case, status=Case.Status.CLOSED, actor=None, reason=reason)
    publish_on_commit(event=triage.triage_event(case, change="merged"), groups=triage.triage_groups(case))


def _thread_key(inbound: InboundMessage) -> str:
    if inbound.thread_keys:
        return inbound.thread_keys[0][:255]
    return inbound.external_id if inbound.kind == Message.Kind.EMAIL else ""
