"""Deciding a suggested contact detail is pushed to the case pages of the customer's open cases:
their customer panel is rendered again for each watcher, and nobody else hears of it."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from cases import services, suggestion_services
from customers import services as customer_services
from customers.models import IdentitySuggestion
from tests import factories
from tests.test_consumers import build_world, case_page, newest_seq, open_case, queue_page, received

pytestmark = pytest.mark.django_db(transaction=True)

NUMBER = "+44 20 7946 0123"


def _suggested(world):
    """Robin wrote a number that is nobody's on the case's first message: one open suggestion."""
    case = open_case(world["x"], text=f"Call me on {NUMBER}")
    message = case.messages.get()
    [suggestion] = customer_services.identity_suggestions_record(
        customer=case.customer, text=message.text, source_message_id=message.pk
    )
    return case, suggestion


def panels(messages) -> list[dict]:
    return [m for m in messages if m["type"] == "swap" and m["target"] == "customer-panel"]


async def test_accepting_pushes_the_customer_panel_to_a_page_watching_the_case():
    world = await sync_to_async(build_world)()
    case, suggestion = await sync_to_async(_suggested)(world)
    page = await case_page(world["colleague"], case)
    assert (await received(page))[0]["type"] == "presence"

    # when another agent accepts the number
    await sync_to_async(suggestion_services.suggestion_accept)(suggestion=suggestion, actor=world["agent"])

    # then the colleague's page is sent the panel again, with the phone and without the question
    [push] = panels(await received(page))
    assert 'id="customer-panel"' in push["html"] and "+442079460123" in push["html"]
    assert "Suggested" in push["html"] and "as this customer" not in push["html"]
    assert push["seq"] == await sync_to_async(newest_seq)(case)
    assert 'name="csrfmiddlewaretoken"' not in push["html"]  # htmx sends the page's token
    await page.disconnect()


async def test_dismissing_pushes_the_panel_without_the_question():
    world = await sync_to_async(build_world)()
    case, suggestion = await sync_to_async(_suggested)(world)
    page = await case_page(world["colleague"], case)
    await received(page)
    first = await sync_to_async(lambda: services.case_open(customer=case.customer, channel=world["x"]))()

    await sync_to_async(suggestion_services.suggestion_dismiss)(suggestion=suggestion, actor=world["agent"])

    [push] = panels(await received(page))
    assert "as this customer" not in push["html"] and first.reference in push["html"]
    assert await sync_to_async(lambda: IdentitySuggestion.objects.get().status)() == "dismissed"
    await page.disconnect()


async def test_the_previous_owner_s_case_page_is_told_too_and_outsiders_hear_nothing():
    world = await sync_to_async(build_world)()
    case, suggestion = await sync_to_async(_suggested)(world)

    def someone_calls_meanwhile():
        # The number calls before the agent decides: a customer of its own, with a case.
        caller = factories.CustomerFactory(name="Caller")
        factories.IdentityFactory(customer=caller, kind="phone", platform_id="+442079460123")
        return services.case_open(customer=caller, channel=world["x"])

    caller_case = await sync_to_async(someone_calls_meanwhile)()
    caller_page = await case_page(world["colleague"], caller_case)
    await received(caller_page)
    outsider = await queue_page(world["outsider"], view="department")

    await sync_to_async(suggestion_services.suggestion_accept)(suggestion=suggestion, actor=world["agent"])

    # the caller's case page loses the number from its panel; Billing's agent hears nothing
    [push] = panels(await received(caller_page))
    assert "+442079460123" not in push["html"]
    assert await outsider.receive_nothing(timeout=0.5)
    await caller_page.disconnect()
    await outsider.disconnect()


async def test_a_refused_accept_publishes_nothing():
    world = await sync_to_async(build_world)()
    case, suggestion = await sync_to_async(_suggested)(world)
    await sync_to_async(customer_services.identity_suggestion_dismiss)(
        suggestion=suggestion, actor=world["agent"]
    )
    page = await case_page(world["colleague"], case)
    await received(page)

    with pytest.raises(customer_services.CustomerRefused):
        await sync_to_async(suggestion_services.suggestion_accept)(
            suggestion=suggestion, actor=world["agent"]
        )

    assert await page.receive_nothing(timeout=0.5)
    await page.disconnect()
