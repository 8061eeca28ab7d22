"""One subscription to the channel layer per process, shared by every desk socket it serves.

A socket does not listen on the channel layer itself. The process's hub holds one channel,
joins each group at least one of its sockets is in (the server still picks every group:
see :mod:`channels_app.groups`), and hands each event to those sockets. An event therefore
costs one Redis message per process and group, not one per socket, and the rows a live event
needs are read once per process (:data:`channels_app.rows.live_rows`) before any socket
is handed it. Events reach each socket in the order the hub received them; a socket in
several of the target groups (its department and its personal group) is handed an event once.

Each socket applies its events in a task of its own, so a slow socket (a case page reading
its actions) holds up nobody else. What reaches a socket is still decided by the socket:
the hub only narrows the crowd to the members of the group the event was sent to.

When the layer fails (Redis down), the hub closes every socket it serves, as a socket's own
failing receive did: pages go offline at once and reconnect, saying what they last saw. The
next socket to connect starts a new hub, whose first ``group_add`` is refused while Redis is
away. Memberships are renewed on the layer before they expire, and groups no socket of the
process is in any more are left.

Each hub listens through a channel layer instance of its own (see ``_own_layer``): the
process-wide instance may have been made before the process forked (a test server, a server
preforked by its parent), and with it its client prefix and its receive bookkeeping, so two
processes would read one Redis list and a receive left open in the parent would refuse every
receive in the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import OrderedDict, deque

from channels.layers import DEFAULT_CHANNEL_LAYER, InMemoryChannelLayer, channel_layers, get_channel_layer

from .publish import layer_answered

logger = logging.getLogger(__name__)

# This often the hub leaves the groups no local socket is in any more and joins the others
# again: the layer forgets a member after its group expiry, and a restarted Redis (which keeps
# nothing) at once.
UPKEEP_SECONDS = 60.0
# Events whose delivery the hub remembers, to hand an event reaching it through several groups
# once to each socket.
RECENT_EVENTS = 512


class LayerLost(ConnectionError):
    """The hub's channel layer failed; the socket must go offline and reconnect."""


class Hub:
    def __init__(self, layer, loop):
        self.layer = layer
        self.loop = loop
        self.channel: str | None = None
        self.dead = False
        self.members: dict[str, set] = {}  # group -> local sockets
        self.joined: set[str] = set()  # groups the hub's channel is in on the layer
        self.recent: OrderedDict[str, set] = OrderedDict()  # event id -> sockets handed it
        self.outbox: deque = deque()
        self.wakeup: asyncio.Future | None = None
        self.tasks: list[asyncio.Task] = []
        self.joining = 0  # sockets inside ``join``: the hub must not stop under them

    # --- sockets ----------------------------------------------------------------------------------

    async def join(self, consumer, names) -> None:
        """Add ``consumer`` to groups ``names``; raises when the layer cannot be reached."""
        if self.dead:
            raise LayerLost("the channel layer was lost")
        self.joining += 1
        try:
            await self._join(consumer, names)
        finally:
            self.joining -= 1

    async def _join(self, consumer, names) -> None:
        if self.channel is None:
            # A name of its own per hub: channels-redis keeps receive locks by the name's
            # process part, and a hub of an event loop that has gone (tests) may leave one held.
            self.channel = await self.layer.new_channel(prefix=f"hub.{next(_numbers)}")
            self.tasks = [
                self.loop.create_task(self._receive()),
                self.loop.create_task(self._fan_out()),
                self.loop.create_task(self._upkeep()),
            ]
        for name in names:
            # Joined again even when the hub is in the group already: a restarted Redis has
            # forgotten every membership, and the hub may not have noticed the restart (the
            # client reconnects under its blocking read). A page that reconnects after an
            # outage so brings its groups back at once; ``renew`` brings back the rest.
            await self.layer.group_add(name, self.channel)
            self.joined.add(name)
        layer_answered()
        if self.dead:
            raise LayerLost("the channel layer was lost")
        for name in names:
            self.members.setdefault(name, set()).add(consumer)

    def leave(self, consumer, names) -> None:
        """Take ``consumer`` out of groups ``names`` (the hub leaves empty groups later)."""
        for name in names:
            members = self.members.get(name)
            if members is not None:
                members.discard(consumer)
                if not members:
                    del self.members[name]
        if not self.members and not self.dead:
            self.loop.call_soon(self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        """With no socket left, stop listening (the next socket starts a new hub)."""
        if self.members or self.joining or self.dead:
            return
        self._retire()
        self.loop.create_task(self._leave_all(list(self.joined) if self.channel is not None else []))

    def _retire(self) -> None:
        """Mark this hub dead, forget it (the next socket starts a new one) and stop its tasks,
        but the one calling."""
        self.dead = True
        if _hubs.get(self.loop) is self:
            del _hubs[self.loop]
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()

    async def _leave_all(self, names: list[str]) -> None:
        try:
            for name in names:
                await self.layer.group_discard(name, self.channel)
        except Exception:  # the layer forgets the member after its group expiry anyway
            pass
        await _close(self.layer)

    # --- the layer --------------------------------------------------------------------------------

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                await self._lost(error)
                return
            self._arrived(message)

    def _arrived(self, message: dict) -> None:
        members = self.members.get(message.get("group"))
        if not members or message.get("type") != "live.event":
            return
        event_id = message.get("event_id")
        handed = self.recent.get(event_id)
        if handed is None:
            handed = self.recent[event_id] = set()
            while len(self.recent) > RECENT_EVENTS:
                self.recent.popitem(last=False)
        targets = [consumer for consumer in members if consumer not in handed]
        if not targets:
            return
        handed.update(targets)
        event = message.get("event") or {}
        rows = None
        from .rows import event_case_ids, live_rows, needs_rows

        kind = event.get("type", "")
        if needs_rows(kind):
            case_ids = event_case_ids(event)
            if case_ids and any(consumer.wants(kind, case_ids) for consumer in targets):
                # Queued now, so the events arriving while a read runs are read together.
                rows = self.loop.create_task(live_rows.get(event_id, case_ids))
        self.outbox.append((event_id, event, rows, targets))
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)

    async def _fan_out(self) -> None:
        """Hand events to their sockets in arrival order, once their rows are read."""
        while True:
            if not self.outbox:
                self.wakeup = self.loop.create_future()
                await self.wakeup
                continue
            event_id, event, rows, targets = self.outbox.popleft()
            resolved = None
            if rows is not None:
                try:
                    resolved = await rows
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("live event %s could not be read", event.get("type"))
                    continue
            for consumer in targets:
                consumer.hand(event_id, event, resolved)

    async def _upkeep(self) -> None:
        """Leave groups nobody here is in, and renew the others (see ``UPKEEP_SECONDS``)."""
        while True:
            await asyncio.sleep(UPKEEP_SECONDS)
            try:
                await self.tidy()
                await self.renew()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                await self._lost(error)
                return

    async def tidy(self) -> None:
        """Leave the groups no socket of this process is in any more."""
        for name in [name for name in self.joined if name not in self.members]:
            self.joined.discard(name)  # a socket joining meanwhile adds it again
            await self.layer.group_discard(name, self.channel)
            if name in self.members and name not in self.joined:
                await self.layer.group_add(name, self.channel)
                self.joined.add(name)

    async def renew(self) -> None:
        """Join every group again: the layer drops a member after its group expiry."""
        for name in list(self.joined):
            await self.layer.group_add(name, self.channel)

    async def _lost(self, error: Exception) -> None:
        """The layer failed: retire this hub and close its sockets (their pages reconnect to a new one)."""
        if self.dead:
            return
        logger.warning("live events stopped: the channel layer failed (%s)", error or type(error).__name__)
        self._retire()
        sockets = {consumer for members in self.members.values() for consumer in members}
        self.members.clear()
        self.outbox.clear()
        for consumer in sockets:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await consumer.close(code=1011)
        await _close(self.layer)


_hubs: dict = {}
_numbers = itertools.count(1)


def hub() -> Hub | None:
    """This event loop's hub (None without a channel layer)."""
    loop = asyncio.get_running_loop()
    current = _hubs.get(loop)
    if current is None:
        layer = get_channel_layer()
        if layer is None:
            return None
        for old in [old for old in _hubs if old.is_closed()]:  # loops of finished tests
            del _hubs[old]
        current = _hubs[loop] = Hub(_own_layer(layer), loop)
    return current


def _own_layer(layer):
    """A channel layer instance for one hub alone, made in this process (see the module's notes).

    The in-memory layer is the exception: its groups live in the instance, so the hub must
    listen on the one the services publish through."""
    if isinstance(layer, InMemoryChannelLayer):
        return layer
    return channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)


async def _close(layer) -> None:
    """Close a stopped hub's own connections to the layer (the in-memory layer has none)."""
    if isinstance(layer, InMemoryChannelLayer):
        return
    close = getattr(layer, "close_pools", None) or getattr(layer, "flush", None)
    with contextlib.suppress(Exception):  # the connections may be gone with the server already
        await close()
