"""What the demo's customers write about, and the words agents answer with."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from customers.models import Customer

from ..models import Case
from .organisation import PHONE_LINE_DISPLAY, SUPPORT_ADDRESS

AIRPORTS = ["London Heathrow", "Manchester", "Edinburgh", "Glasgow", "Belfast", "Dublin", "Amsterdam",
            "Paris CDG", "Barcelona", "Faro", "Malaga", "Rome", "Lisbon", "Berlin", "Bristol"]  # fmt: skip


@dataclass(frozen=True)
class Topic:
    """What a conversation is about, in the words each channel uses."""

    key: str
    subject: str
    category: str
    priority: str
    post: str  # a public post or comment (<= 280 characters)
    private: str  # a DM / WhatsApp message
    email: str
    call: str  # the agent's summary of an inbound call
    follow_up: str
    reply: str
    resolution: str
    note: str
    # Where the case goes when Social Care or Customer Service hands it over, and why.
    transfer_to: str = ""
    transfer_reason: str = ""


TOPICS = [
    Topic(
        key="delay",
        subject="Compensation for delayed {flight}",
        category=Case.Category.MAJOR,
        priority=Case.Priority.HIGH,
        post="@CaselineAir {flight} {origin} to {dest} delayed {hours} hours and nobody at the gate knows "
        "anything. Who do I talk to about compensation?",
        private="Hi, booking {booking}. Our flight {flight} on {date} landed {hours} hours late and I'd like "
        "to claim the compensation we're owed.",
        email="Hello,\n\nMy flight {flight} from {origin} to {dest} on {date} arrived {hours} hours late "
        "(booking {booking}). I believe I'm entitled to compensation under UK261. I've attached the "
        "boarding passes.\n\nKind regards,\n{name}",
        call="Customer rang about the compensation claim for {flight}; wants to know when it will be paid.",
        follow_up="Any update on my claim? It's been a few days now.",
        reply="Thanks {first}, I've logged a compensation claim for booking {booking}. Billing will confirm "
        "the amount within 5 working days.",
        resolution="Good news {first}: compensation of £{amount} for {flight} has been approved and will "
        "reach your card in 3-5 working days.",
        note="Only the first 40 minutes were ATC; the rest was a crew shortage, so the claim is eligible.",
        transfer_to="billing",
        transfer_reason="Compensation claim: Billing pays UK261 claims.",
    ),
    Topic(
        key="bag",
        subject="Bag {bagtag} missing after {flight}",
        category=Case.Category.MAJOR,
        priority=Case.Priority.HIGH,
        post="@CaselineAir landed in {dest} on {flight} two hours ago and my suitcase never came out. "
        "Baggage desk is closed. Brilliant.",
        private="My bag didn't arrive on {flight} ({origin} to {dest}). Tag number {bagtag}. It has my "
        "medication in it.",
        email="Hello,\n\nMy checked bag (tag {bagtag}) did not arrive with me on {flight} on {date}. I filed a "
        "report at the airport. Where is it, and when will it be delivered? I need it urgently.\n\n"
        "Thanks,\n{name}",
        call="Caller asked for a delivery slot for bag {bagtag}; address confirmed.",
        follow_up="Still no sign of the bag. The tracker hasn't changed since yesterday.",
        reply="Thanks {first}. Bag {bagtag} has been found in {origin} and is booked on the next flight to "
        "{dest}.",
        resolution="Your bag {bagtag} is out for delivery today between 14:00 and 18:00. Sorry again for "
        "the wait.",
        note="Tracing shows the bag was short-shipped at {origin}; courier booked for delivery.",
        transfer_to="customer-service",
        transfer_reason="Baggage tracing and delivery are handled by Customer Service.",
    ),
    Topic(
        key="double-charge",
        subject="Charged twice for booking {booking}",
        category=Case.Category.MAJOR,
        priority=Case.Priority.NORMAL,
        post="@CaselineAir you've charged my card twice for the same booking. £{amount} twice. Sort it out "
        "please.",
        private="Booking {booking} was charged twice on {date}, £{amount} each time. Please refund the "
        "duplicate.",
        email="Hello,\n\nMy card was charged twice (£{amount} each) for booking {booking} on {date}. Please "
        "refund the second payment. A screenshot of my statement is attached.\n\n{name}",
        call="Customer called about the duplicate charge on {booking}; payment references checked.",
        follow_up="The second payment is still showing on my statement.",
        reply="I can see both payments for {booking}, {first}. I've asked Billing to refund the duplicate "
        "£{amount}.",
        resolution="The duplicate payment of £{amount} has been refunded; it can take up to 5 working days "
        "to show on your statement.",
        note="Payment gateway timed out and the retry captured a second time.",
        transfer_to="billing",
        transfer_reason="Duplicate card payment: Billing issues the refund.",
    ),
    Topic(
        key="checkin",
        subject="Online check-in fails for {booking}",
        category=Case.Category.MINOR,
        priority=Case.Priority.NORMAL,
        post="@CaselineAir your app keeps saying 'Something went wrong' when I try to check in for {flight} "
        "tomorrow.",
        private="I'm on iOS, app version 7.{minor}. Check-in for booking {booking} fails at the passport "
        "step every time.",
        email="Hi,\n\nI can't check in online for {flight} (booking {booking}). The app and the website both "
        "fail after I scan my passport.\n\n{name}",
        call="Caller couldn't check in online; talked through web check-in as a workaround.",
        follow_up="Tried again this morning, same error.",
        reply="Thanks {first}. We know about a passport-scan problem in app 7.{minor}; web check-in works "
        "in the meantime.",
        resolution="A fix is live in app version 7.{minor_next}, and your boarding pass for {flight} is in "
        "the app now.",
        note="Reproduced with passports expiring after 2030. Bug CL-{bug} raised.",
        transfer_to="technical-support",
        transfer_reason="App fault reproduced: needs Technical Support.",
    ),
    Topic(
        key="wifi",
        subject="Wi-Fi refund for {flight}",
        category=Case.Category.MINOR,
        priority=Case.Priority.LOW,
        post="@CaselineAir paid £{wifi} for Wi-Fi on {flight} and it didn't connect once the whole flight.",
        private="Paid £{wifi} for the Wi-Fi pass on {flight}, never got online. Can I have a refund?",
        email="Hello,\n\nI bought a Wi-Fi pass (£{wifi}) on {flight} on {date} and it never connected. I'd like "
        "a refund.\n\n{name}",
        call="Customer asked for a refund of the on-board Wi-Fi pass on {flight}.",
        follow_up="Just checking you got my message about the Wi-Fi?",
        reply="Sorry {first}, the Wi-Fi on that aircraft had a fault on {date}. I've asked for a refund.",
        resolution="We've refunded the £{wifi} Wi-Fi pass for {flight}.",
        note="Satcom unit on that tail was reported faulty by the crew.",
        transfer_to="technical-support",
        transfer_reason="On-board connectivity fault: Technical Support logs it with the provider.",
    ),
    Topic(
        key="seats",
        subject="Seats together on {flight}",
        category=Case.Category.QUESTION,
        priority=Case.Priority.NORMAL,
        post="@CaselineAir can I change seats on {flight} without paying again? Travelling with a toddler "
        "and we've been split up.",
        private="Booking {booking}: we've been split up on {flight}. Any way to sit together? Our son is 2.",
        email="Hello,\n\nOn booking {booking} my family has been seated apart on {flight}. Our son is two. "
        "Can you seat us together?\n\n{name}",
        call="Caller wanted seats together on {flight}; family of three.",
        follow_up="Online check-in opens tomorrow, will the seats be sorted by then?",
        reply="Of course, {first}. Leave it with me and I'll sort seats on {flight} for the three of you.",
        resolution="Done, {first}: you're in seats 14A-14C on {flight}.",
        note="Family seating rule applies; no seat fee.",
    ),
    Topic(
        key="refund",
        subject="Refund for cancelled {flight}",
        category=Case.Category.MAJOR,
        priority=Case.Priority.HIGH,
        post="@CaselineAir still waiting on my refund for the cancelled {flight}. Six weeks now. Every "
        "phone call ends with 'it's in progress'.",
        private="Booking {booking}, {flight} was cancelled on {date}. I requested a refund of £{amount} and "
        "have heard nothing.",
        email="Hello,\n\n{flight} on {date} was cancelled and I requested a full refund (£{amount}, booking "
        "{booking}) six weeks ago. Please tell me when it will be paid.\n\n{name}",
        call="Customer chasing the refund for cancelled {flight}; upset about the wait.",
        follow_up="Another week and still nothing.",
        reply="I'm sorry {first}, that's far too long. I've escalated the refund for {booking} to Billing.",
        resolution="Your refund of £{amount} for {flight} was issued today to the original card.",
        note="Refund stuck in the manual queue: card had expired. Paying by bank transfer instead.",
        transfer_to="billing",
        transfer_reason="Refund stuck in payments: Billing owns refunds.",
    ),
    Topic(
        key="assistance",
        subject="Assistance for {flight}",
        category=Case.Category.QUESTION,
        priority=Case.Priority.NORMAL,
        post="@CaselineAir my dad uses a wheelchair, how do I book assistance for {flight}?",
        private="Hi, I'd like to book wheelchair assistance for my father on {flight} ({booking}).",
        email="Hello,\n\nPlease arrange wheelchair assistance at {origin} and {dest} for my father on {flight} "
        "(booking {booking}).\n\nThank you,\n{name}",
        call="Caller booked wheelchair assistance for a family member on {flight}.",
        follow_up="Do we need to arrive earlier than usual?",
        reply="Thanks {first}, I've added assistance at {origin} and {dest} to booking {booking}.",
        resolution="Assistance is confirmed for {flight}; please arrive 2 hours before departure and go to "
        "the assistance desk.",
        note="WCHC code added to booking.",
    ),
    Topic(
        key="points",
        subject="Missing points for {flight}",
        category=Case.Category.MINOR,
        priority=Case.Priority.LOW,
        post="@CaselineAir my points for {flight} never showed up on my account.",
        private="My Caseline Club points for {flight} ({booking}) are missing.",
        email="Hello,\n\nThe points for {flight} on {date} (booking {booking}) are missing from my Caseline "
        "Club account.\n\n{name}",
        call="Customer asked about missing loyalty points for {flight}.",
        follow_up="Still not showing in the app.",
        reply="Thanks {first}, I've asked the loyalty team to add the points for {flight}.",
        resolution="We've added {points} points to your account for {flight}.",
        note="Membership number was missing from the booking.",
    ),
    Topic(
        key="allowance",
        subject="Cabin bag allowance",
        category=Case.Category.QUESTION,
        priority=Case.Priority.LOW,
        post="@CaselineAir is a 10kg cabin bag ok on a Basic fare?",
        private="Quick question: is a 10kg cabin bag included on Basic fares?",
        email="Hello,\n\nWhat cabin bag allowance do I have on a Basic fare for {flight}?\n\n{name}",
        call="Caller asked about the cabin bag allowance on Basic fares.",
        follow_up="And can I add one later, after booking?",
        reply="Hi {first}, Basic includes one small bag under the seat; a 10kg cabin bag can be added in "
        "Manage booking.",
        resolution="Yes, you can add a cabin bag in Manage booking up to 2 hours before departure.",
        note="Standard answer; no action needed.",
    ),
]
PRAISE = [
    "Huge thanks to the crew on @CaselineAir {flight} today. Calm, kind and funny. Made a long day so much "
    "better.",
    "Shout out to the lady at the @CaselineAir desk in {origin} who rebooked us in two minutes flat.",
    "First time flying @CaselineAir and honestly impressed. On time, friendly, decent coffee.",
]
RANTS = [
    "Why is the queue at the @CaselineAir bag drop in {origin} always this long. Every single time.",
    "@CaselineAir the sandwiches on {flight} cost more than my train to the airport.",
    "Delayed again. @CaselineAir must stand for 'Can't Ever Leave On time'.",
]
PRAISE_REPLY = "That's lovely to hear, {first}! We'll pass your thanks on. ^{sig}"
RANT_REPLY = (
    "Sorry {first}, that's not the experience we want for you. We'll share this with the team. ^{sig}"
)
PUBLIC_TO_DM = (
    "Hi {first}, sorry to hear this. Please send us a DM with your booking reference and we'll look into "
    "it. Your case is {ref}. ^{sig}"
)
DM_TO_EMAIL = (
    "Thanks {first}. Could you e-mail the documents to " + SUPPORT_ADDRESS + " with [#{ref}] in the "
    "subject? Everything stays on one case that way."
)
EMAIL_REPLY = (
    "Dear {first},\n\n{reply}\n\nIf it's easier, call us on "
    + PHONE_LINE_DISPLAY
    + " and quote {ref}.\n\nKind regards,\n{agent}\nCaseline Air customer care"
)
CALL_QUOTE = " Customer quoted case {ref}."
FOLLOW_UP_EMAIL = "Hello again,\n\nFollowing our phone call, here are the documents you asked for. "


def topic_facts(rng: random.Random, customer: Customer, now: datetime) -> dict:
    """Flight numbers, airports, amounts... to fill a topic's texts for one conversation."""
    origin, dest = rng.sample(AIRPORTS, 2)
    return {
        "flight": f"CL{rng.randint(100, 989)}",
        "origin": origin,
        "dest": dest,
        "booking": "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6)),
        "bagtag": f"LHRCL{rng.randint(10000, 99999)}",
        "hours": rng.randint(3, 9),
        "amount": rng.choice([79, 129, 220, 260, 350, 520]),
        "wifi": rng.choice([6, 9, 15]),
        "points": rng.choice([750, 1200, 2400]),
        "minor": (minor := rng.randint(2, 8)),
        "minor_next": minor + 1,
        "bug": rng.randint(1000, 9999),
        "date": (now - timedelta(days=rng.randint(1, 20))).strftime("%d %B"),
        "name": customer.name,
        "first": customer.name.split(" ")[0] if customer.name else "there",
    }
