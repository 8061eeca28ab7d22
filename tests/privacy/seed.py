"""Customers with distinctive personal data on every channel, seeded through the real path:
signed webhooks posted to the webhook view, stored, processed and ingested into cases.

Every personal string of a person contains their marker (letters a case reference never
uses, so no reference can contain one by chance), or is one of their numeric ids, so a
scan of the database for those few strings finds anything of theirs left anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import urlencode

from django.utils import timezone

from cases import services
from cases.models import SatisfactionSurvey
from customers.models import Customer, Identity
from tests.faults import traffic
from tests.security.conftest import post


@dataclass(frozen=True)
class Person:
    marker: str  # in every personal text of theirs
    n: int  # keeps their platform message ids apart
    x_id: str
    fb_psid: str
    wa_id: str
    phone: str

    @property
    def name(self) -> str:
        return f"Dana {self.marker.capitalize()}son"

    @property
    def email(self) -> str:
        return f"dana.{self.marker}@privacy.test"

    @property
    def strings(self) -> list[str]:
        """What must be gone after their erasure (matched case-insensitively)."""
        return [self.marker, self.x_id, self.fb_psid, self.wa_id, self.phone.lstrip("+")]


DANA = Person(
    marker="ulvio",
    n=1,
    x_id="9988776655",
    fb_psid="7311992288776655",
    wa_id="16505550123",
    phone="+14155550177",
)
OTHER = Person(
    marker="ivolu",
    n=2,
    x_id="5544332211",
    fb_psid="7322883399441100",
    wa_id="16505550456",
    phone="+14155550188",
)


def x_dm(person: Person):
    delivery = traffic.x_dm(900 + person.n, author=person.x_id, text=f"{person.marker} X: my router melted")
    body = json.loads(delivery.body)
    body["users"][person.x_id].update(name=person.name, screen_name=f"dana_{person.marker}")
    return traffic.signed("x", json.dumps(body).encode())


def messenger(person: Person):
    body = json.loads(traffic.messenger(0, author=person.fb_psid, text="").body)
    message = body["entry"][0]["messaging"][0]["message"]
    message.update(mid=f"m_{person.marker}_fb", text=f"{person.marker} Messenger: refund please")
    return traffic.signed("facebook", json.dumps(body).encode())


def whatsapp(person: Person):
    body = json.loads(traffic.whatsapp(0, author=person.wa_id, text="").body)
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["profile"]["name"] = f"WA {person.name}"
    value["messages"][0].update(
        id=f"wamid.{person.marker}", text={"body": f"{person.marker} WhatsApp: hello"}
    )
    return traffic.signed("whatsapp", json.dumps(body).encode())


def email_with_attachment(person: Person, *, mentions: str = ""):
    mail = EmailMessage()
    mail["From"] = f"{person.name} <{person.email}>"
    mail["To"] = f"Support <{traffic.CHANNELS['email'][1]}>"
    mail["Subject"] = f"{person.marker} invoice is wrong"
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = f"<{person.marker}-mail-1@privacy.test>"
    mail.set_content(f"{person.marker} mail body: please call me on {person.phone}. {mentions}")
    mail.add_alternative(f"<p>{person.marker} html part</p>", subtype="html")
    mail.add_attachment(
        f"{person.marker} passport number 12345".encode(),
        maintype="text",
        subtype="plain",
        filename=f"{person.marker}-passport.txt",
    )
    return traffic.signed("email", mail.as_bytes())


def phone_call(person: Person):
    call_sid = f"CA{person.n:032d}"
    form = {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": call_sid,
        "CallStatus": "completed",
        "Direction": "inbound",
        "From": person.phone,
        "To": traffic.CHANNELS["phone"][1],
        "CallerName": f"{person.marker} caller",
        "CallDuration": "42",
        "Timestamp": format_datetime(datetime.now(UTC)),
    }
    recording = {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": call_sid,
        "RecordingSid": f"RE{person.marker}",
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Recordings/RE{person.marker}",
        "RecordingStatus": "completed",
        "RecordingDuration": "40",
    }
    return [
        traffic.signed("phone", urlencode(form).encode()),
        traffic.signed("phone", urlencode(recording).encode()),
    ]


def deliveries(person: Person, *, mentions: str = "") -> list:
    # The call first: the phone number the mail gives is then a known identity (a suggestion).
    return [
        *phone_call(person),
        x_dm(person),
        messenger(person),
        whatsapp(person),
        email_with_attachment(person, mentions=mentions),
    ]


def seed(client, capture, person: Person, *, actor, mentions: str = "") -> Customer:
    """Post ``person``'s messages on every platform through the webhooks, then merge the
    customers ingest made (one per platform) into the X one, as an agent would: one person."""
    for delivery in deliveries(person, mentions=mentions):
        with capture(execute=True):
            response = post(client, delivery)
        assert response.status_code == 200, response.content
    identities = Identity.objects.filter(
        platform_id__in=[
            person.x_id,
            person.fb_psid,
            f"+{person.wa_id}",
            person.wa_id,
            person.email,
            person.phone,
        ]
    )
    customers = sorted({i.customer_id for i in identities})
    target = Customer.objects.get(identities__platform_id=person.x_id)
    for source_id in customers:
        if source_id != target.pk:
            with capture(execute=True):
                services.customer_merge(source=Customer.objects.get(pk=source_id), target=target, actor=actor)
    # The customer answered the satisfaction survey of one of the cases, in their own words.
    case = target.cases.order_by("pk").first()
    SatisfactionSurvey.objects.create(
        case=case,
        department=case.department,
        sent_at=timezone.now(),
        rating=4,
        comment=f"{person.marker} says thanks",
        answered_at=timezone.now(),
    )
    return Customer.objects.get(pk=target.pk)
