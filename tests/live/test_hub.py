"""One subscription to the channel layer per process: the hub joins each group once for all
its sockets, hands each event only to the sockets of the group it was sent to, and when the
layer fails closes its sockets so their pages reconnect."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.core import RedisChannelLayer

from cases import services
from channels_app import groups, hub
from tests.test_consumers import build_world, open_case, queue_page, received, rows_of

pytestmark = pytest.mark.django_db(transaction=True)


async def layer_members(group: str) -> set[str] | None:
    """The channels in ``group`` on the layer (None for a layer this test cannot look into)."""
    layer = hub.hub().layer
    if isinstance(layer, InMemoryChannelLayer):
        return set(layer.groups.get(group, {}))
    if isinstance(layer, RedisChannelLayer):  # channels-redis core (pubsub keeps no member list)
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
    staying = await queue_page(world["agent"])  # Social Care's socket keeps the hub running
    page = await queue_page(world["outsider"])
    department = groups.department_group(world["billing"].pk)
    current = hub.hub()
    assert department in current.members

    await page.disconnect()
    await current.tidy()

    assert department not in current.joined and not current.dead
    members = await layer_members(department)
    assert members is None or current.channel not in members
    await staying.disconnect()


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


async def test_a_hub_listens_on_a_layer_instance_of_its_own():
    shared = get_channel_layer()
    if isinstance(shared, InMemoryChannelLayer):
        pytest.skip("the in-memory layer's groups live in its one instance: the hub shares it")
    if not isinstance(shared, RedisChannelLayer):
        pytest.skip("the receive bookkeeping and client prefix are channels-redis core's")
    # What a process forked from a parent that was receiving inherits: a receive in progress
    # on another event loop. channels-redis refuses any receive on a second loop then.
    elsewhere = asyncio.new_event_loop()
    saved = shared.receive_count, shared.receive_event_loop
    shared.receive_count, shared.receive_event_loop = 1, elsewhere
    try:
        world = await sync_to_async(build_world)()
        page = await queue_page(world["agent"])
        own = hub.hub().layer
        assert own is not shared and own.client_prefix != shared.client_prefix
        assert hub.hub().channel.split(".")[-1].startswith(own.client_prefix)

        case = await sync_to_async(open_case)(world["x"])

        assert case.pk in [m["id"] for m in rows_of(await received(page))]
        await page.disconnect()
    finally:
        shared.receive_count, shared.receive_event_loop = saved
        elsewhere.close()


async def test_a_socket_joining_as_the_last_one_leaves_keeps_the_hub(monkeypatch):
    world = await sync_to_async(build_world)()
    first = await queue_page(world["agent"])
    current = hub.hub()
    gate = asyncio.Event()
    group_add = current.layer.group_add

    async def slow_group_add(name, channel):
        await gate.wait()
        return await group_add(name, channel)

    monkeypatch.setattr(current.layer, "group_add", slow_group_add)
    # a page loads while the one before it (its last socket here) closes
    second = asyncio.ensure_future(queue_page(world["colleague"]))
    async with asyncio.timeout(5):
        while not current.joining:  # the new socket waits inside the hub's join
            await asyncio.sleep(0.01)
    await first.disconnect()
    await asyncio.sleep(0.1)  # the hub's check for having no socket left runs
    gate.set()
    page = await second

    assert hub.hub() is current and not current.dead
    case = await sync_to_async(open_case)(world["x"])
    assert case.pk in [m["id"] for m in rows_of(await received(page))]
    await page.disconnect()
