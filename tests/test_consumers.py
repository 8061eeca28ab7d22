import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from cases import services
from channels_app.consumers import DeskConsumer
from config.asgi import application
from tests import factories


def communicator_for(user):
    communicator = WebsocketCommunicator(DeskConsumer.as_asgi(), "/ws/desk/")
    communicator.scope["user"] = user
    return communicator


@pytest.mark.django_db(transaction=True)
async def test_anonymous_socket_is_refused():
    from django.contrib.auth.models import AnonymousUser

    communicator = communicator_for(AnonymousUser())
    connected, code = await communicator.connect()
    assert not connected
    assert code == 4401
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_socket_without_allowed_origin_is_refused():
    communicator = WebsocketCommunicator(application, "/ws/desk/", headers=[(b"origin", b"http://evil.test")])
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_agent_receives_changes_of_their_department_only():
    # given an agent of Social Care and a case in Social Care and one in Billing
    def build():
        social = factories.DepartmentFactory(name="Social Care", slug="social-care")
        billing = factories.DepartmentFactory(name="Billing", slug="billing")
        agent = factories.UserFactory(username="live-agent")
        factories.MembershipFactory(user=agent, department=social)
        ours = services.case_open(customer=factories.CustomerFactory(), department=social)
        theirs = services.case_open(customer=factories.CustomerFactory(), department=billing)
        return agent, ours, theirs

    agent, ours, theirs = await sync_to_async(build)()
    communicator = communicator_for(agent)
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from(timeout=2))["type"] == "hello"

    # when both cases change (each service publishes after its commit)
    await sync_to_async(services.case_set_priority)(case=theirs, priority="high", actor=None)
    await sync_to_async(services.case_claim)(case=ours, actor=agent)

    # then the agent hears about their department's case only
    event = await communicator.receive_json_from(timeout=2)
    assert event["type"] == "case.changed"
    assert event["case_id"] == ours.pk
    assert event["assignee_id"] == agent.pk
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()
