"""One subscription to the channel layer per process: the hub joins each group once for all
its sockets, hands each event only to the sockets of the group it was sent to, and when the
layer fails closes its sockets so their pages reconnect."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from cases import services
from channels_app import groups, hub
from tests.test_consumers import build_world, open_case, queue_page, received, rows_of

pytestmark = pytest.mark.django_db(transaction=True)


async def layer_members(group: str) -> set[str] | None:
    """The channels in ``group`` on the layer (None for a layer this test cannot look into)."""
    layer = hub.hub().layer
    if hasattr(layer, "groups"):  # in memory
        return set(layer.groups.get(group, {}))
    if hasattr(layer, "_group_key"):  # channels-redis core
        key = layer._group_key(group)
        members = await layer.connection(layer.consistent_hash(group)).zrange(key, 0, -1)
        return {member.decode() for member in members}
    return None


async def test_sockets_of_a_department_share_one_membership_and_each_gets_the_event():
    world = await sync_to_async(build_world)()
    case = await sync_to_async(open_case)(world["x"])
    agent = await queue_page(world["agent"])
    colleague = await queue_page(world["colleague"])
    outsider = await queue_page(world["outsider"])
    department = groups.department_group(world["social"].pk)

    members = await layer_members(department)
    if members is not None:
        # the process's hub is the member, not its sockets (a shared Redis may hold hubs of
        # processes gone before: the layer drops them after its group expiry)
        assert hub.hub().channel in members
        assert not [name for name in members if not name.startswith("hub.")]

    await sync_to_async(services.case_set_priority)(case=case, priority="high", actor=None)

    assert [m["id"] for m in rows_of(await received(agent))] == [case.pk]
    assert [m["id"] for m in rows_of(await received(colleague))] == [case.pk]
    assert await outsider.receive_nothing(timeout=0.3)  # Billing's socket is not in the group
    for page in (agent, colleague, outsider):
        await page.disconnect()


async def test_the_hub_leaves_a_group_once_its_last_socket_has_gone():
    world = await sync_to_async(build_world)()
    page = await queue_page(world["outsider"])
    department = groups.department_group(world["billing"].pk)
    current = hub.hub()
    assert department in current.members

    await page.disconnect()
    await current.tidy()

    assert department not in current.joined
    members = await layer_members(department)
    assert members is None or current.channel not in members


async def test_when_the_layer_fails_the_sockets_close_and_the_next_one_starts_again(monkeypatch):
    world = await sync_to_async(build_world)()
    layer = hub.hub().layer
    failure = asyncio.Event()
    receive = layer.receive

    async def failing_receive(channel):
        await failure.wait()
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(layer, "receive", failing_receive)
    page = await queue_page(world["agent"])
    old = hub.hub()

    failure.set()

    closed = await page.receive_output(timeout=2)
    assert closed == {"type": "websocket.close", "code": 1011}
    monkeypatch.setattr(layer, "receive", receive)
    again = await queue_page(world["agent"])  # a new hub, joined afresh
    assert hub.hub() is not old
    case = await sync_to_async(open_case)(world["x"])
    assert case.pk in [m["id"] for m in rows_of(await received(again))]
    await again.disconnect()
