"""Collision control: who has a case open, who is typing a reply, and who holds the reply lock.

This is soft, short-lived state, so it lives in the Django cache (Redis in production,
process memory in the embedded default) and never in the database:

- **Presence** is one cache entry per case: the open tabs (one per websocket) with
  their user, an expiry and, while the agent types, a typing-until time. Each tab
  refreshes its line on a heartbeat (desk.js pings every 20 s), so a tab whose process
  died drops out after ``VIEW_TTL`` seconds. Entries are read, changed and written
  back; two tabs joining the same case in the same instant on two processes can lose
  one line, and the next heartbeat puts it back. Changes are published to the case's
  group, so everyone on the case page sees them live.
- **The reply lock** says which one agent is writing the reply to a case. It is one
  cache key written with an atomic add, taken when an agent starts a draft and held
  while the draft is not empty (``LOCK_TTL`` without activity lets it go). Others see
  who holds it; their send is refused (:class:`DraftLocked`) until it is free, and a
  supervisor of the case's department (or an admin) may take it over, which is
  recorded on the case as a ``draft_taken`` event.

Stale drafts are the other half: :func:`draft_send` passes the time a draft began to
:func:`cases.services.case_reply`, which refuses it when the customer wrote or a
colleague replied since.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from django.core.cache import cache
from django.db import transaction

from channels_app import groups
from channels_app.publish import publish_on_commit

from . import permissions, services
from .errors import NotPermitted, ServiceError
from .models import Case, CaseEvent, Message

# Seconds a tab stays listed without a heartbeat.
VIEW_TTL = 45
# Seconds "is typing" lasts after the last report of a keystroke.
TYPING_TTL = 8
# Seconds the reply lock survives without any activity from its holder.
LOCK_TTL = 90


class DraftLocked(ServiceError):
    """Someone else is writing the reply to this case."""

    code = "draft_locked"
    status = 409


def _presence_key(case_id: int) -> str:
    return f"caseline:presence:{int(case_id)}"


def _lock_key(case_id: int) -> str:
    return f"caseline:replylock:{int(case_id)}"


def display_name(user) -> str:
    return user.get_full_name() or user.email or user.get_username()


@dataclass(frozen=True)
class DraftLock:
    """Who holds the reply lock of a case, since when, and whom they took it from."""

    user_id: int
    name: str
    since: str
    taken_from: str = ""

    @property
    def since_at(self) -> datetime:
        return datetime.fromisoformat(self.since)


@dataclass(frozen=True)
class Viewer:
    user_id: int
    name: str
    typing: bool = False


@dataclass(frozen=True)
class Presence:
    """Everyone on a case page now (one line per person, however many tabs) and the reply lock."""

    case_id: int
    viewers: list[Viewer] = field(default_factory=list)
    lock: DraftLock | None = None

    def others(self, user_id: int) -> list[Viewer]:
        return [viewer for viewer in self.viewers if viewer.user_id != user_id]

    def as_event(self) -> dict:
        return {
            "type": "presence.changed",
            "case_id": self.case_id,
            "viewers": [asdict(viewer) for viewer in self.viewers],
            "lock": asdict(self.lock) if self.lock else None,
        }

    @classmethod
    def from_event(cls, event: dict) -> Presence:
        lock = event.get("lock")
        return cls(
            case_id=event["case_id"],
            viewers=[Viewer(**viewer) for viewer in event.get("viewers", [])],
            lock=DraftLock(**lock) if lock else None,
        )


# --- Reading -------------------------------------------------------------------------------


def _tabs(case_id: int, now: float) -> dict[str, dict]:
    tabs = cache.get(_presence_key(case_id)) or {}
    return {tab: line for tab, line in tabs.items() if line["until"] > now}


def _viewers(tabs: dict[str, dict], now: float) -> list[Viewer]:
    people: dict[int, Viewer] = {}
    for line in tabs.values():
        typing = line.get("typing_until", 0) > now
        known = people.get(line["user"])
        people[line["user"]] = Viewer(
            user_id=line["user"], name=line["name"], typing=typing or bool(known and known.typing)
        )
    return sorted(people.values(), key=lambda viewer: (viewer.name.lower(), viewer.user_id))


def draft_lock_holder(*, case_id: int) -> DraftLock | None:
    raw = cache.get(_lock_key(case_id))
    return DraftLock(**raw) if raw else None


def presence_read(*, case_id: int) -> Presence:
    """Who is on the case now, and who holds its reply lock."""
    now = time.time()
    return Presence(
        case_id=case_id, viewers=_viewers(_tabs(case_id, now), now), lock=draft_lock_holder(case_id=case_id)
    )


# --- Presence ------------------------------------------------------------------------------


def _announce(presence: Presence) -> None:
    publish_on_commit(event=presence.as_event(), groups=[groups.case_group(presence.case_id)])


def _write_tabs(case_id: int, change, *, now: float) -> tuple[Presence, bool]:
    """Apply ``change`` to the case's tab lines; return the presence and whether people changed."""
    tabs = _tabs(case_id, now)
    before = _viewers(tabs, now)
    change(tabs)
    if tabs:
        cache.set(_presence_key(case_id), tabs, VIEW_TTL)
    else:
        cache.delete(_presence_key(case_id))
    after = _viewers(tabs, now)
    return Presence(case_id=case_id, viewers=after, lock=draft_lock_holder(case_id=case_id)), before != after


def case_viewing(*, case_id: int, tab: str, user) -> Presence:
    """``user`` has the case open in ``tab`` (a websocket): list them, or keep them listed.

    Called when a case page starts watching and on every heartbeat. Publishes a
    ``presence.changed`` event to the case's group when the people on it changed
    (a newcomer, or a tab that expired since the last heartbeat).
    """
    now = time.time()

    def change(tabs):
        line = tabs.get(tab) or {"user": user.pk, "name": display_name(user), "typing_until": 0}
        line["until"] = now + VIEW_TTL
        tabs[tab] = line

    presence, changed = _write_tabs(case_id, change, now=now)
    if changed:
        _announce(presence)
    return presence


def case_left(*, case_id: int, tab: str, user) -> Presence:
    """``tab`` closed the case page. The user's reply lock goes when their last tab leaves."""
    now = time.time()
    presence, changed = _write_tabs(case_id, lambda tabs: tabs.pop(tab, None), now=now)
    still_here = any(viewer.user_id == user.pk for viewer in presence.viewers)
    if not still_here and presence.lock and presence.lock.user_id == user.pk:
        _release(case_id, user)
        presence = Presence(case_id=case_id, viewers=presence.viewers, lock=None)
        changed = True
    if changed:
        _announce(presence)
    return presence


def case_typing(*, case: Case, tab: str, user, typing: bool, has_draft: bool) -> Presence:
    """``user`` is (or stopped) typing a reply in ``tab``.

    While the draft is not empty the user takes, or keeps, the case's reply lock if
    nobody else holds it; an emptied draft lets it go. Publishes ``presence.changed``
    when anything others see changed.
    """
    now = time.time()
    holder = draft_lock_holder(case_id=case.pk)
    lock_changed = False
    if has_draft and permissions.can_work_case(user, case):
        if holder is None or holder.user_id == user.pk:
            lock_changed = holder is None
            _acquire(case.pk, user)
    elif holder is not None and holder.user_id == user.pk and not has_draft:
        _release(case.pk, user)
        lock_changed = True

    def change(tabs):
        line = tabs.get(tab) or {"user": user.pk, "name": display_name(user)}
        line["until"] = now + VIEW_TTL
        line["typing_until"] = now + TYPING_TTL if typing else 0
        tabs[tab] = line

    presence, changed = _write_tabs(case.pk, change, now=now)
    if changed or lock_changed:
        _announce(presence)
    return presence


# --- The reply lock -------------------------------------------------------------------------


def _acquire(case_id: int, user) -> bool:
    """Take the lock if it is free, or refresh it if ``user`` holds it; False if someone else does."""
    key = _lock_key(case_id)
    mine = asdict(DraftLock(user_id=user.pk, name=display_name(user), since=datetime.now(UTC).isoformat()))
    if cache.add(key, mine, LOCK_TTL):
        return True
    current = cache.get(key)
    if current is None:  # expired between the two calls
        return cache.add(key, mine, LOCK_TTL)
    if current["user_id"] != user.pk:
        return False
    cache.touch(key, LOCK_TTL)
    return True


def _release(case_id: int, user) -> bool:
    current = cache.get(_lock_key(case_id))
    if current is None or current["user_id"] != user.pk:
        return False
    cache.delete(_lock_key(case_id))
    return True


def _refusal(lock: DraftLock) -> str:
    taken = f" (taken over from {lock.taken_from})" if lock.taken_from else ""
    return (
        f"{lock.name} is writing the reply to this case{taken}. Wait until they send it, "
        "or ask a supervisor to take it over."
    )


def draft_lock_acquire(*, case: Case, user) -> DraftLock:
    """Take the case's reply lock for ``user`` (or keep it); ``DraftLocked`` if someone else has it."""
    if not permissions.can_work_case(user, case):
        raise NotPermitted("You cannot reply on this case.")
    if not _acquire(case.pk, user):
        raise DraftLocked(_refusal(draft_lock_holder(case_id=case.pk)), field="text")
    lock = draft_lock_holder(case_id=case.pk)
    _announce(presence_read(case_id=case.pk))
    return lock


def draft_lock_release(*, case: Case, user) -> bool:
    """Let go of the case's reply lock if ``user`` holds it; announces the change."""
    released = _release(case.pk, user)
    if released:
        _announce(presence_read(case_id=case.pk))
    return released


def can_take_over(user, case: Case) -> bool:
    """Supervisors of the case's department, and admins, may take a colleague's reply lock."""
    return permissions.is_admin(user) or case.department_id in permissions.supervised_department_ids(user)


@transaction.atomic
def draft_lock_take_over(*, case: Case, actor, reason: str = "") -> DraftLock:
    """A supervisor takes the reply lock of ``case`` from whoever holds it.

    Guarantees: only a supervisor of the case's department or an admin may; the
    previous holder's own send is refused from then on (their text stays in their
    browser); a ``draft_taken`` CaseEvent names both, written in this transaction;
    everyone on the case hears of it after commit. Taking a free lock just takes it.
    """
    if not can_take_over(actor, case):
        raise NotPermitted("Only a supervisor of the case's department can take over a reply.")
    previous = draft_lock_holder(case_id=case.pk)
    if previous is not None and previous.user_id != actor.pk:
        services.record_event(
            case=case,
            kind=CaseEvent.Kind.DRAFT_TAKEN,
            actor=actor,
            before={"holder": previous.user_id},
            after={"holder": actor.pk},
            reason=(reason or "").strip(),
        )
    lock = DraftLock(
        user_id=actor.pk,
        name=display_name(actor),
        since=datetime.now(UTC).isoformat(),
        taken_from=previous.name if previous is not None and previous.user_id != actor.pk else "",
    )
    transaction.on_commit(lambda: cache.set(_lock_key(case.pk), asdict(lock), LOCK_TTL))
    publish_on_commit(
        event=Presence(case_id=case.pk, viewers=presence_read(case_id=case.pk).viewers, lock=lock).as_event(),
        groups=[groups.case_group(case.pk)],
    )
    return lock


def draft_send(
    *,
    case: Case,
    author,
    channel,
    text: str,
    is_public: bool = False,
    identity=None,
    draft_started_at: datetime | None = None,
) -> Message:
    """Send a reply unless a colleague holds the reply lock, then let the lock go.

    Builds on :func:`cases.services.case_reply` (which refuses a stale draft with
    ``StaleDraft`` and queues the message): ``DraftLocked`` when another agent holds the
    case's reply lock. After the send the author's lock is released and announced.
    """
    holder = draft_lock_holder(case_id=case.pk)
    if holder is not None and holder.user_id != author.pk:
        raise DraftLocked(_refusal(holder), field="text")
    message = services.case_reply(
        case=case,
        author=author,
        channel=channel,
        text=text,
        is_public=is_public,
        identity=identity,
        draft_started_at=draft_started_at,
    )
    released = _release(case.pk, author)

    def done_typing(tabs):
        for line in tabs.values():
            if line["user"] == author.pk:
                line["typing_until"] = 0

    presence, changed = _write_tabs(case.pk, done_typing, now=time.time())
    if released or changed:
        _announce(presence)
    return message


def draft_move_to_private(*, case: Case, actor, channel, private_channel_kind: str = "dm") -> Message:
    """Ask the customer, in public, to continue privately, unless a colleague holds the reply lock.

    Builds on :func:`cases.services.case_move_to_private` (a public reply quoting the case
    reference; the case then waits on the customer). It is a reply like any other, so a
    colleague writing one holds it back (``DraftLocked``).
    """
    holder = draft_lock_holder(case_id=case.pk)
    if holder is not None and holder.user_id != actor.pk:
        raise DraftLocked(_refusal(holder), field="channel")
    if not permissions.can_work_case(actor, case):
        raise NotPermitted("You cannot reply on this case.")
    return services.case_move_to_private(
        case=case, actor=actor, channel=channel, private_channel_kind=private_channel_kind
    )
