"""The desk's websocket: one per browser tab, every group chosen by the server.

A socket joins its user's personal group, their departments' groups and, for
supervisors and admins, the supervisors' group. A case page asks to *watch* its case
(``{"action": "watch", "case": "C-7Q4K2"}``); the consumer joins that case's group
only after :func:`cases.permissions.can_view_case` allows it. A queue page describes
what it shows (``{"action": "queue", ...}``), the board asks for its figures
(``{"action": "board"}``).

Services publish small events (``channels_app.publish``). The consumer turns each one
into what the page shows, rendered from the same template partials the page uses: a
queue row to insert, move or remove, a timeline entry, the case header and actions,
who else is on the case, an alert. Nothing about a case reaches a socket unless its
user may see that case: rows are filtered with the queue's own rules
(:func:`cases.selectors.queue_match`), watched cases are re-checked against the
database when they change, alerts list only visible cases.

Delivery over the channel layer is at most once, so the database numbers the stream:
every push about a case carries ``seq``, a ``CaseEvent`` id (for a live push, the newest
event of its cases when it was rendered, so the push reflects at least that event). A
page remembers the newest ``seq`` it was sent; when its socket comes back it subscribes
again with that number and ``"replay": true``, and the consumer replays from the
database, oldest first, every event after it that the user may see
(:mod:`channels_app.replay`), each push marked ``"replay": true``, then says
``replay.done``. A gap of more than ``replay.REPLAY_LIMIT`` events, or a page that has
no number, is told to refetch the region instead (as is a subscription without
``"replay"``: the board, and older pages).

A user whose role must have a second factor (``MFA_REQUIRED_ROLES``) and has none is
refused, and so is a session that skipped the user's second factor, by the rule the pages
use (:func:`config.middleware.second_factor_owed`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from types import SimpleNamespace

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.template.loader import render_to_string
from django.utils.dateparse import parse_datetime
from django.utils.functional import empty

from cases import drafts, permissions, preferences, selectors
from config.middleware import second_factor_owed

from . import groups, hub, notify, presence, replay
from .presence import PUSH_CONTEXT
from .rows import (  # noqa: F401  (imported from here by the hub and tests)
    EVENTS_WITHOUT_ROWS,
    LiveRows,
    SharedWork,
    _live_batch,
    _render_entry,
    _render_header,
    _render_rows,
    event_case_ids,
    live_rows,
    needs_rows,
    shared,
)

logger = logging.getLogger(__name__)

# The board refreshes its figures at most this often (seconds).
BOARD_REFRESH_SECONDS = 5.0
# Rows a queue page may report as shown.
MAX_SHOWN_ROWS = 500
# The same alert (kind, state and cases) within this many seconds is shown once.
ALERT_REPEAT_SECONDS = 60.0


def _seq(content: dict) -> int | None:
    """The sequence number a page sent, if it is one."""
    seq = content.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else None


def _stamped(push: dict, seq: int | None, replay: bool) -> dict:
    push["seq"] = seq
    if replay:
        push["replay"] = True
    return push


class DeskConsumer(AsyncJsonWebsocketConsumer):
    """Pushes rendered updates for the queue, case and board pages of one signed-in user.

    The socket has no channel of its own: the process's hub (:mod:`channels_app.hub`) is in
    the socket's groups and hands it their events (``hand``), which it applies in order in a
    task of its own, one at a time with what the page asks.
    """

    async def __call__(self, scope, receive, send):
        self.scope = scope
        self.base_send = send
        # Names this tab in the case's presence (the cache), where a channel name was used.
        self.tab = f"tab.{uuid.uuid4().hex}"
        self.busy = asyncio.Lock()
        self.inbox: deque = deque()
        self.pump: asyncio.Task | None = None
        self.hub: hub.Hub | None = None
        self.joined: list[str] = []
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        finally:
            if self.hub is not None:
                self.hub.leave(self, self.joined)
                if getattr(self, "watching", None) is not None:
                    self.hub.leave(self, [groups.case_group(self.watching.case_id)])
            if self.pump is not None:
                self.pump.cancel()

    async def dispatch(self, message):
        """Call the message's handler, one at a time with the live events being applied.

        Without channels' per-message database hop: every database call here goes through
        ``database_sync_to_async``, which closes stale connections itself.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        async with self.busy:
            await handler(message)

    async def connect(self):
        self.window: selectors.QueueWindow | None = None
        self.shown: set[int] = set()
        self.watching: SimpleNamespace | None = None
        self.board = False
        self.board_task: asyncio.Task | None = None
        self.board_sent = 0.0
        self.typing_check: asyncio.Task | None = None
        self.alerted: deque = deque(maxlen=32)
        self.prefs: dict = preferences.SOCKET_DEFAULTS
        self.followed: set[int] = set()
        self.noticed = notify.Recent()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        # The scope's user is a lazy object, evaluated by now: every event reads the user a
        # dozen times, through the wrapper's attribute lookup each time.
        self.user = user if getattr(user, "_wrapped", empty) is empty else user._wrapped
        owes_mfa, self.role, departments = await database_sync_to_async(self._load_role)()
        if owes_mfa:
            await self.close(code=4403)
            return
        names = [groups.user_group(user.pk)] + [groups.department_group(pk) for pk in sorted(departments)]
        names += self._followed_groups()
        if self.role in ("admin", "supervisor"):
            names.append(groups.supervisors_group())
        self.hub = hub.hub()
        if self.hub is not None:
            try:
                await self.hub.join(self, names)
            except Exception as error:  # Redis away: the page shows it is offline and retries
                logger.warning(
                    "desk socket refused: the channel layer failed (%s)", error or type(error).__name__
                )
                await self.close(code=1011)
                return
        self.joined = names
        await self.accept()
        await self.send_json({"type": "hello", "role": self.role, "prefs": self._page_prefs()})

    def _load_role(self) -> tuple[bool, str, set[int]]:
        """Whether the user still owes a second factor, their role and their departments.

        Read together, in the database's thread: an admin's role is known without the
        memberships, which the departments then read (and cache for this socket).
        """
        owes_mfa = second_factor_owed(self.scope.get("session"), self.user) is not None
        if not owes_mfa:
            self._set_prefs(preferences.socket_preferences(user=self.user))
        return owes_mfa, permissions.role_of(self.user), permissions.department_ids(self.user)

    def _set_prefs(self, prefs: dict) -> None:
        self.prefs, self.followed = prefs, set(prefs["followed"])

    def _followed_groups(self) -> list[str]:
        """Case groups of followed cases outside the user's departments: their replies reach no other
        group of the user's (a follower may see the case: ``permissions.visible_cases_q``)."""
        return [groups.case_group(pk) for pk in self.prefs["followed_elsewhere"]]

    def _page_prefs(self) -> dict:
        """What the page applies itself: the theme (mirrored in localStorage) and the chime."""
        return {"theme": self.prefs["theme"], "sound": self.prefs["sound"]}

    async def disconnect(self, code):
        for task in (self.board_task, self.typing_check):
            if task is not None:
                task.cancel()
        if self.watching is not None:
            await self._unwatch()
        # The socket leaves its hub's groups when it ends (``__call__``), however it ends.

    # --- What the page asks for ------------------------------------------------------------

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict):
            return
        handler = {
            "watch": self.on_watch,
            "unwatch": self.on_unwatch,
            "queue": self.on_queue,
            "board": self.on_board,
            "typing": self.on_typing,
            "ping": self.on_ping,
        }.get(content.get("action"))
        if handler is None:
            await self.send_json({"type": "error", "error": "Unknown action."})
            return
        await handler(content)

    async def on_queue(self, content: dict):
        replaying = content.get("replay") is True and _seq(content) is not None
        window, shown, stale = await database_sync_to_async(presence.queue_subscription)(
            user=self.user, content=content, max_rows=MAX_SHOWN_ROWS, check_stale=not replaying
        )
        self.window, self.shown = window, shown
        if window is None:
            await self.send_json({"type": "error", "error": "That queue cannot be followed."})
        elif replaying:
            # Rows the page shows that are no longer this user's work: drop them (an id the
            # page sent, so nothing is told about the case but "not here").
            claimed = {pk for pk in content.get("rows") or [] if isinstance(pk, int)}
            for pk in sorted(claimed - shown)[:MAX_SHOWN_ROWS]:
                await self.send_json({"type": "queue.remove", "id": pk, "seq": None, "replay": True})
            await self._replay(_seq(content), region="queue")
        elif stale:
            await self.send_json({"type": "refresh", "region": "queue"})

    async def on_board(self, content: dict):
        if self.role not in ("admin", "supervisor"):
            await self.send_json({"type": "error", "error": "The board is for supervisors."})
            return
        self.board = True
        seq = content.get("seq")
        stale = not isinstance(seq, int) or await database_sync_to_async(selectors.queue_changed_since)(
            user=self.user, seq=seq
        )
        if stale:
            await self.send_json({"type": "refresh", "region": "board"})

    async def on_watch(self, content: dict):
        reference = str(content.get("case") or "")[:20]
        case = await database_sync_to_async(selectors.case_for_page)(user=self.user, reference=reference)
        if case is None:
            await self.send_json({"type": "watch.refused", "case": reference})
            return
        if self.watching is not None and self.watching.case_id != case.pk:
            await self._unwatch()
        self.watching = SimpleNamespace(
            case_id=case.pk, reference=case.reference, can_take_over=drafts.can_take_over(self.user, case)
        )
        if self.hub is not None:
            await self.hub.join(self, [groups.case_group(case.pk)])
        state = await database_sync_to_async(drafts.case_viewing)(
            case_id=case.pk, tab=self.tab, user=self.user
        )
        await self._send_presence(state)
        if content.get("replay") is True and _seq(content) is not None:
            await self._replay(_seq(content), region="case", case_id=case.pk)
            return
        since = parse_datetime(str(content.get("since") or ""))
        stale = since is None or await database_sync_to_async(selectors.case_changed_since)(
            case_id=case.pk, at=since
        )
        if stale:
            await self.send_json({"type": "refresh", "region": "case"})

    async def on_unwatch(self, content: dict):
        if self.watching is not None:
            await self._unwatch()

    async def _unwatch(self):
        watching, self.watching = self.watching, None
        name = groups.case_group(watching.case_id)
        if self.hub is not None and name not in self.joined:  # a followed case's group stays
            self.hub.leave(self, [name])
        await database_sync_to_async(drafts.case_left)(case_id=watching.case_id, tab=self.tab, user=self.user)

    async def on_typing(self, content: dict):
        if self.watching is None:
            return
        await database_sync_to_async(presence.typing)(
            user=self.user,
            case_id=self.watching.case_id,
            tab=self.tab,
            typing=bool(content.get("typing")),
            has_draft=bool(content.get("draft")),
        )

    async def on_ping(self, content: dict):
        if self.watching is not None:
            await database_sync_to_async(drafts.case_viewing)(
                case_id=self.watching.case_id, tab=self.tab, user=self.user
            )
        await self.send_json({"type": "pong"})

    # --- What the services say ------------------------------------------------------------------

    def hand(self, event_id: str, event: dict, rows) -> None:
        """Queue an event the hub received for this socket (``rows``: its read rows, or None)."""
        self.inbox.append((event_id, event, rows))
        if self.pump is None or self.pump.done():
            self.pump = asyncio.ensure_future(self._drain())

    async def _drain(self):
        while self.inbox:
            async with self.busy:
                while self.inbox:
                    await self.live_event(*self.inbox.popleft())

    async def live_event(self, event_id: str, event: dict, rows=None):
        kind = event.get("type", "")
        try:
            if kind == "presence.changed":
                if self.watching is not None and event.get("case_id") == self.watching.case_id:
                    await self._send_presence(drafts.Presence.from_event(event))
                return
            if kind == "incident.opened":
                await self._incident(event_id, event)
                return
            if kind == "prefs.changed":
                if event.get("user_id") == self.user.pk:
                    self._set_prefs(
                        await database_sync_to_async(preferences.socket_preferences)(user=self.user)
                    )
                    more = [name for name in self._followed_groups() if name not in self.joined]
                    if more and self.hub is not None:
                        await self.hub.join(self, more)
                        self.joined = self.joined + more
                    await self.send_json({"type": "prefs", **self._page_prefs()})
                return
            case_ids = event_case_ids(event)
            if not case_ids or not self.wants(kind, case_ids):
                return
            seq, rows = rows if rows is not None else await live_rows.get(event_id, case_ids)
            await self._notify(kind, event, rows)
            await self._apply(event_id, kind, event, case_ids, rows, seq=seq)
        except Exception:  # one bad event must not close the agent's socket
            logger.exception("live event %s could not be pushed", kind)

    async def _apply(
        self, event_id: str, kind: str, event: dict, case_ids: list[int], rows: dict, *, seq, replay=False
    ):
        """Push what one event changes on this socket's page, each push stamped with ``seq``."""
        visible = {pk: rows[pk] for pk in case_ids if pk in rows and self._sees(rows[pk].case)}
        if self.window is not None:
            await self._queue(case_ids, visible, seq=seq, replay=replay)
        if self.watching is not None and self.watching.case_id in case_ids:
            await self._case(event_id, kind, event, seq=seq, replay=replay)
        if self.board and visible:
            self._board_soon()
        if not replay:
            await self._alert(event_id, kind, event, visible)

    async def _replay(self, seq: int, *, region: str, case_id: int | None = None):
        """Push, oldest first, every event after ``seq`` this page missed; past the limit, a refresh."""
        events = await database_sync_to_async(replay.events_after)(
            user=self.user, seq=seq, case_id=case_id, shown=sorted(self.shown)
        )
        if events is None:
            await self.send_json({"type": "refresh", "region": region})
            return
        if not events:
            return
        case_ids = sorted({item["case_id"] for item in events})
        rows = await database_sync_to_async(_render_rows)(case_ids)
        for item in events:
            event = item["event"]
            if not self.wants(event["type"], [item["case_id"]]):
                continue
            await self._apply(
                f"seq.{item['seq']}",
                event["type"],
                event,
                [item["case_id"]],
                rows,
                seq=item["seq"],
                replay=True,
            )
        await self.send_json({"type": "replay.done", "seq": events[-1]["seq"], "events": len(events)})

    def wants(self, kind: str, case_ids: list[int]) -> bool:
        """Whether this socket shows anything an event about ``case_ids`` could change."""
        return (
            self.window is not None
            or self.board
            or (self.watching is not None and self.watching.case_id in case_ids)
            or kind in presence.AGENT_ALERTS
            or (self.role in ("admin", "supervisor") and kind in presence.SUPERVISOR_ALERTS)
            or notify.may_notify(kind, self.prefs["notify"])
        )

    async def _notify(self, kind: str, event: dict, rows: dict):
        """Send the desktop notices this event brings the user (live events only, never replays)."""
        for push in notify.pushes(
            kind=kind, event=event, rows=rows, user_id=self.user.pk, prefs=self.prefs, followed=self.followed,
            recent=self.noticed,
        ):  # fmt: skip
            await self.send_json(push)

    def _sees(self, case) -> bool:
        """The queue rule of visibility: admin, the case's department, or the case's assignee."""
        return (
            self.role == "admin"
            or case.department_id in permissions.department_ids(self.user)
            or case.assignee_id == self.user.pk
        )

    async def _queue(self, case_ids: list[int], visible: dict, *, seq, replay=False):
        for pk in case_ids:
            row = visible.get(pk)
            belongs = row is not None and selectors.queue_match(row.case, user=self.user, window=self.window)
            if belongs and (not self.window.q or pk in self.shown):
                self.shown.add(pk)
                if replay:
                    push = {"type": "queue.row", "id": pk, "key": row.key, "html": row.html}
                    await self.send_json(_stamped(push, seq, replay))
                else:
                    await self.send(text_data=row.push)
            elif pk in self.shown:
                self.shown.discard(pk)
                await self.send_json(_stamped({"type": "queue.remove", "id": pk}, seq, replay))

    async def _case(self, event_id: str, kind: str, event: dict, *, seq, replay=False):
        watching = self.watching
        if kind == "customer.changed":  # identities or suggestions: the customer panel, for this user
            html = await database_sync_to_async(presence.customer_panel)(
                user=self.user, reference=watching.reference
            )
            if html is not None:
                await self.send_json(
                    _stamped({"type": "swap", "target": "customer-panel", "html": html}, seq, replay)
                )
            return
        if kind in ("message.added", "message.delivery") and isinstance(event.get("message_id"), int):
            entry = await shared.get(("entry", event_id), lambda: _render_entry(event["message_id"]))
            if entry is not None and entry["case_id"] == watching.case_id:
                await self.send_json(_stamped({"type": "timeline.entry", **entry}, seq, replay))
            return
        view = await database_sync_to_async(presence.case_view)(user=self.user, case_id=watching.case_id)
        if view is None:  # moved where this user may no longer see it
            await self._unwatch()
            await self.send_json(_stamped({"type": "case.gone", "case": watching.reference}, seq, replay))
            return
        header = await shared.get(("header", event_id), lambda: _render_header(watching.case_id))
        watching.can_take_over = view["can_take_over"]
        await self.send_json(_stamped({"type": "swap", "target": "case-header", "html": header}, seq, replay))
        await self.send_json(
            _stamped({"type": "swap", "target": "case-actions", "html": view["actions"]}, seq, replay)
        )
        await self.send_json(
            _stamped({"type": "swap", "target": "case-handoff", "html": view["handoff"]}, seq, replay)
        )

    async def _send_presence(self, state: drafts.Presence):
        watching = self.watching
        if watching is None:
            return
        # "Is typing" lapses without an event when a colleague stops; look again then.
        if self.typing_check is not None:
            self.typing_check.cancel()
            self.typing_check = None
        if any(viewer.typing for viewer in state.others(self.user.pk)):
            self.typing_check = asyncio.ensure_future(self._recheck_presence(watching.case_id))
        context = {
            **PUSH_CONTEXT,
            "presence": state,
            "user": self.user,
            "case": SimpleNamespace(reference=watching.reference),
            "can_take_over": watching.can_take_over,
        }
        await self.send_json(
            {
                "type": "presence",
                "lock": "free"
                if state.lock is None
                else ("mine" if state.lock.user_id == self.user.pk else "other"),
                "html": render_to_string("cases/partials/presence.html", context),
                "lock_html": render_to_string("cases/partials/draft_lock.html", context),
            }
        )

    async def _recheck_presence(self, case_id: int):
        await asyncio.sleep(drafts.TYPING_TTL + 0.5)
        self.typing_check = None
        if self.watching is not None and self.watching.case_id == case_id:
            await self._send_presence(await database_sync_to_async(drafts.presence_read)(case_id=case_id))

    def _board_soon(self):
        """Ask the board page to refetch its figures, at most every few seconds."""
        if self.board_task is not None and not self.board_task.done():
            return
        delay = max(0.0, self.board_sent + BOARD_REFRESH_SECONDS - time.monotonic())

        async def later():
            await asyncio.sleep(delay)
            self.board_sent = time.monotonic()
            await self.send_json({"type": "refresh", "region": "board"})

        self.board_task = asyncio.ensure_future(later())

    async def _alert(self, event_id: str, kind: str, event: dict, visible: dict):
        alert = presence.alert_for(
            kind=kind,
            event=event,
            visible=visible,
            user=self.user,
            supervisor=self.role in ("admin", "supervisor"),
        )
        if alert is None:
            return
        # The same news can come through several groups as separate events (the sweep tells the
        # department and the supervisors apart): show it once.
        signature = (kind, event.get("sla_state"), tuple(sorted(visible)))
        now = time.monotonic()
        if any(seen == signature and now - at < ALERT_REPEAT_SECONDS for seen, at in self.alerted):
            return
        self.alerted.append((signature, now))
        await self._send_alert(alert)

    async def _incident(self, event_id: str, event: dict):
        if self.role not in ("admin", "supervisor") or not isinstance(event.get("incident_id"), int):
            return
        incident = await shared.get(
            ("incident", event_id), lambda: selectors.incident_departments(incident_id=event["incident_id"])
        )
        if not incident:
            return
        if self.role != "admin" and incident["channel__department_id"] not in permissions.department_ids(
            self.user
        ):
            return
        await self._send_alert(presence.incident_alert(event=event, incident=incident))

    async def _send_alert(self, alert: dict):
        alert.setdefault("at", datetime.now(UTC))
        html = render_to_string("cases/partials/alert.html", {"alert": alert})
        await self.send_json({"type": "alert", "level": alert["level"], "html": html})
