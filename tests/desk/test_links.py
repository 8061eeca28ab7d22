"""Links taken from customers' payloads (attachments, call recordings, profile links) reach an
``href`` only when they are http(s) or our own media path."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from cases import selectors
from cases.ingest import ingest
from cases.models import Attachment
from connectors.base import InboundAttachment, InboundMessage
from tests.desk.conftest import crossed_case

HOSTILE = [
    "javascript:alert(1)",
    "JavaScript:alert(document.cookie)",
    "  javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "\x01javascript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "DATA:image/svg+xml,<svg onload=alert(1)>",
    "vbscript:msgbox(1)",
    "//evil.example/x.png",
    "/\\evil.example/x.png",
    "https:/\\evil.example",
    "https://",
    "file:///etc/passwd",
    "ftp://files.example/x",
    "relative/path.png",
    "/admin/",
    "",
    None,
]
SAFE = [
    "https://files.example.test/bill.pdf",
    "http://media.example.test/rec1.mp3?sig=a&b=c",
    "HTTPS://Example.test/Path",
    "/media/attachments/2026/11/bill.pdf",
]


@pytest.mark.parametrize("url", HOSTILE)
def test_unsafe_urls_give_nothing(url):
    assert selectors.safe_url(url) == ""


@pytest.mark.parametrize("url", SAFE)
def test_web_and_own_media_urls_pass(url):
    assert selectors.safe_url(url) == url


def hrefs_and_srcs(body: str) -> list[str]:
    return re.findall(r'\b(?:href|src)="([^"]*)"', body)


def test_hostile_payload_never_reaches_an_href_on_the_case_page(client, agent, channel, settings, tmp_path):
    # given: a customer message as a platform delivered it, every URL in it hostile
    settings.MEDIA_ROOT = tmp_path
    inbound = InboundMessage(
        platform="x",
        external_id="evil-1",
        author_id="66600",
        author_handle="@mallory",
        author_profile={"url": "javascript:alert('profile')", "profile_image_url_https": "data:image/png,x"},
        kind="dm",
        sent_at=datetime.now(UTC),
        text="see attached",
        attachments=(
            InboundAttachment(filename="invoice.pdf", url="javascript:alert('attachment')"),
            InboundAttachment(filename="pic.svg", url="data:image/svg+xml,<svg onload=alert(1)>"),
            InboundAttachment(filename="tab.html", url="java\tscript:alert(1)"),
            InboundAttachment(filename="fine.png", url="https://pbs.example.test/fine.png"),
        ),
    )
    message = ingest(channel=channel, inbound=inbound)
    case = message.case
    stored = Attachment.objects.create(message=message, filename="scan.pdf")
    stored.file.save("scan.pdf", ContentFile(b"%PDF-1.4"), save=True)
    call = InboundMessage(
        platform="x",
        external_id="evil-2",
        author_id="66600",
        kind="call",
        sent_at=datetime.now(UTC),
        text="Call",
        recording_url="javascript:alert('recording')",
    )
    ingest(channel=channel, inbound=call)
    assert Attachment.objects.filter(external_url__startswith="javascript:").exists()  # stored as sent
    client.force_login(agent)

    # when
    body = client.get(reverse("desk:case", args=[case.reference])).content.decode()
    customer_page = client.get(reverse("desk:customer", args=[case.customer_id])).content.decode()

    # then: the safe links are there, nothing else that came from the payload is
    links = hrefs_and_srcs(body) + hrefs_and_srcs(customer_page)
    assert "https://pbs.example.test/fine.png" in links
    assert any(re.fullmatch(r"/media/attachments/\d{4}/\d{2}/scan[^/]*\.pdf", link) for link in links)
    for link in links:
        assert not re.match(r"\s*(javascript|data|vbscript):", link, re.IGNORECASE), link
        assert "alert" not in link, link
    assert "invoice.pdf" in body and "pic.svg" in body  # the files are still listed, unlinked
    assert body.count("(link withheld)") == 4  # three attachments and the recording
    assert "Profile link" not in body and "Profile link" not in customer_page


def test_a_live_timeline_entry_gets_the_same_links(agent, channels):
    case, in_order = crossed_case(channels, agent)
    email = in_order[3]
    Attachment.objects.create(message=email, filename="x.html", external_url="javascript:alert(1)")

    message = selectors.live_message(message_id=email.pk)
    page = next(m for m in selectors.case_page_timeline(case=case) if m.pk == email.pk)

    assert message.attachment_links == page.attachment_links
    assert [link.href for link in message.attachment_links] == ["https://files.example.test/bill.pdf", ""]


def test_profile_link_is_shown_when_it_is_a_web_link(client, agent, channel):
    inbound = InboundMessage(
        platform="x",
        external_id="ok-1",
        author_id="5150",
        author_handle="@ok",
        author_profile={"url": "https://ok.example.test/me"},
        kind="dm",
        sent_at=datetime.now(UTC),
        text="hi",
    )
    case = ingest(channel=channel, inbound=inbound).case
    client.force_login(agent)

    body = client.get(reverse("desk:case", args=[case.reference])).content.decode()

    assert (
        '<a href="https://ok.example.test/me" rel="noopener noreferrer nofollow" target="_blank">Profile link</a>'
        in body
    )
