"""The desk's websocket: one per browser tab, groups chosen by the server."""

from __future__ import annotations

from collections import deque

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from cases import selectors

from . import groups


class DeskConsumer(AsyncJsonWebsocketConsumer):
    """Pushes case, department and personal events to a signed-in user."""

    # How many recent event ids a socket remembers to drop the copies of an event that
    # reach it through several of its groups (department and personal).
    SEEN_EVENTS = 256

    async def connect(self):
        self.seen = deque(maxlen=self.SEEN_EVENTS)
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        department_ids = await database_sync_to_async(selectors.user_department_ids)(user=user)
        self.joined = [groups.user_group(user.pk)] + [groups.department_group(d) for d in department_ids]
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "groups": len(self.joined)})

    async def disconnect(self, code):
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def live_event(self, message):
        event_id = message.get("event_id")
        if event_id in self.seen:
            return
        self.seen.append(event_id)
        await self.send_json(message["event"])
