"""manage.py ingest_payload: saved payloads of every platform through the webhook's pipeline."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from cases.models import Case, Message
from connectors import inbox
from connectors.models import InboundEvent
from customers.models import Customer
from tests import factories
from tests.corpus import CORPUS

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Our accounts as the fixtures name them.
ACCOUNTS = {
    "x": "777",
    "facebook": "104000000000001",
    "whatsapp": "106540352242922",
    "email": "support@caseline.example",
    "phone": "+14155550100",
}


@pytest.fixture
def channels(department):
    made = {}
    for kind, account in ACCOUNTS.items():
        made[kind] = factories.ChannelFactory(
            kind=kind, slug=f"import-{kind}", department=department, account_id=account
        )
        factories.ServicePromiseFactory(channel=made[kind])
    return made


def run(channel, *paths) -> dict:
    out = StringIO()
    call_command("ingest_payload", "--channel", channel.slug, *map(str, paths), stdout=out)
    return json.loads(out.getvalue())


def fixture(topic: str, *names: str) -> list[Path]:
    return [FIXTURES / topic / name for name in names]


@pytest.mark.parametrize(
    ("kind", "topic", "names"),
    [
        ("x", "x", ("mention.json", "reply.json", "dm.json")),
        ("facebook", "meta", ("messenger_text.json", "messenger_attachments.json")),
        ("whatsapp", "meta", ("whatsapp_text.json", "whatsapp_reply.json", "whatsapp_media.json")),
        ("email", "email", ("outlook_reply.eml", "gmail_reply.eml", "latin1_qp.eml")),
        ("phone", "voice", ("completed_inbound.txt", "busy.txt")),
    ],
)
def test_saved_payloads_of_every_platform_become_messages(channels, kind, topic, names):
    channel = channels[kind]

    summary = run(channel, *fixture(topic, *names))

    assert summary["channel"] == channel.slug and summary["files"] == len(names)
    assert summary["events"] == len(names) and summary["duplicates"] == 0
    assert summary["failures"] == [] and set(summary["statuses"]) <= {"processed", "ignored"}
    messages = Message.objects.filter(channel=channel)
    assert summary["messages_created"] == messages.count() > 0
    # No case existed before: every case is new, none was updated.
    assert summary["cases_created"] == Case.objects.count() > 0 and summary["cases_updated"] == 0
    events = InboundEvent.objects.filter(channel=channel)
    assert events.count() == len(names)
    assert sorted(e.headers[inbox.IMPORTED_HEADER] for e in events) == sorted(names)
    assert all(e.provider == kind for e in events)


def test_importing_again_changes_nothing(channels):
    files = fixture("x", "mention.json", "reply.json", "dm.json")
    first = run(channels["x"], *files)

    again = run(channels["x"], *files)

    assert first["messages_created"] == 3 and first["cases_created"] == 1 and first["cases_updated"] == 0
    assert again["duplicates"] == 3 and again["events"] == 0 and again["messages_created"] == 0
    assert Message.objects.count() == 3 and Customer.objects.count() == 1


def test_a_conversation_across_imports_lands_on_one_case(channels):
    run(channels["x"], *fixture("x", "mention.json"))

    follow_up = run(channels["x"], *fixture("x", "reply.json", "dm.json"))

    assert follow_up["messages_created"] == 2
    assert follow_up["cases_created"] == 0 and follow_up["cases_updated"] == 1
    assert Case.objects.count() == 1


def test_the_same_mail_by_webhook_and_by_import_is_stored_once(channels):
    mail = fixture("email", "outlook_reply.eml")[0]
    run(channels["email"], mail)

    again = run(channels["email"], mail)

    assert again["duplicates"] == 1 and Message.objects.count() == 1


def test_a_broken_file_fails_alone_naming_the_file(channels, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{"for_user_id": "777", "tweet_create_events": [')

    summary = run(channels["x"], *fixture("x", "mention.json"), broken)

    assert summary["statuses"] == {"processed": 1, "failed": 1}
    assert summary["failures"] == [
        {"file": str(broken), "error": InboundEvent.objects.get(status="failed").error}
    ]
    assert "not JSON" in summary["failures"][0]["error"]
    assert summary["messages_created"] == 1


def test_a_directory_stands_for_its_files(channels):
    summary = run(channels["phone"], FIXTURES / "voice")

    files = sorted(p for p in (FIXTURES / "voice").iterdir() if p.is_file())
    assert summary["files"] == len(files)
    assert summary["messages_created"] == Message.objects.count() > 0


def test_unknown_channel_and_missing_file_are_refused(channels, tmp_path):
    with pytest.raises(CommandError, match="--channel"):
        call_command("ingest_payload", "--channel", "nope", str(tmp_path))
    with pytest.raises(CommandError, match="no such file"):
        call_command("ingest_payload", "--channel", channels["x"].slug, str(tmp_path / "gone.json"))


@pytest.mark.parametrize(
    ("kind", "folder", "pattern"),
    [
        ("email", "email/helpdesk", "*.eml"),
        ("email", "email/notmuch/threading", "*"),
        ("whatsapp", "whatsapp", "courier_wac_*.json"),
        ("facebook", "meta/messenger", "*.json"),
        ("x", "twitter", "*.json"),
    ],
)
def test_the_shared_corpus_imports_without_losing_a_file(department, kind, folder, pattern):
    files = sorted(p for p in (CORPUS / folder).glob(pattern) if p.is_file()) if CORPUS.exists() else []
    if not files:
        pytest.skip(f"the shared corpus ({CORPUS / folder}) is not here")
    # No account id: the channel takes every entry, whichever page or number it names.
    channel = factories.ChannelFactory(kind=kind, slug=f"corpus-{kind}", department=department, account_id="")

    summary = run(channel, *files)

    stored = InboundEvent.objects.filter(channel=channel)
    assert summary["events"] + summary["duplicates"] == len(files)
    assert stored.count() == summary["events"]
    # Every file is accounted for: processed, ignored or failed with a reason, none left pending.
    assert not stored.filter(status="pending").exists()
    assert all(e.error for e in stored.filter(status__in=["failed", "ignored"]))
    assert summary["messages_created"] == Message.objects.filter(channel=channel).count()
    assert len(summary["failures"]) == stored.filter(status="failed").count()
