"""The Meta connector: Messenger, page feed comments, Instagram and WhatsApp Cloud API.

Parse tests read the bodies in tests/fixtures/meta/, written from Meta's documented
webhook formats; send tests talk to a fake Graph API on 127.0.0.1.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import secrets
import socket
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest
from django.test import RequestFactory

from cases import services
from connectors import meta
from connectors.base import ParseError, ParseResult, SendError, SignatureError
from connectors.models import InboundEvent
from tests.corpus import CORPUS
from tests.factories import ChannelFactory, CustomerFactory, IdentityFactory

from .fake_graph import FakeGraph

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "meta"

PAGE_ID = "104000000000001"
IG_ID = "17841400000000001"
WA_NUMBER_ID = "106540352242922"
ACCOUNTS = {"facebook": PAGE_ID, "instagram": IG_ID, "whatsapp": WA_NUMBER_ID}
OBJECT_KINDS = {"page": "facebook", "instagram": "instagram", "whatsapp_business_account": "whatsapp"}
SECRET_ENV = {
    "app_secret": "CASELINE_TEST_META_APP_SECRET",
    "verify_token": "CASELINE_TEST_META_VERIFY_TOKEN",
    "access_token": "CASELINE_TEST_META_ACCESS_TOKEN",
}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def build_channel(kind: str, **overrides):
    """An unsaved channel: parsing needs no database."""
    values = {"kind": kind, "slug": f"meta-{kind}", "account_id": ACCOUNTS[kind], "secret_env": SECRET_ENV}
    return ChannelFactory.build(**{**values, **overrides})


def fixture_body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> dict:
    return json.loads(fixture_body(name))


def parse_body(body: bytes | dict, kind: str, **channel) -> ParseResult:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return meta.parse(InboundEvent(body=raw), build_channel(kind, **channel))


def parse_fixture(name: str, kind: str, **channel) -> ParseResult:
    return parse_body(fixture_body(name), kind, **channel)


def read_or_refuse(body: bytes | dict, kind: str, **channel) -> tuple[str, ParseResult | str]:
    """("result", ParseResult) or ("error", the ParseError's text); anything else propagates."""
    try:
        return "result", parse_body(body, kind, **channel)
    except ParseError as exc:
        return "error", str(exc)


def assert_well_formed(result: ParseResult) -> None:
    assert isinstance(result, ParseResult)
    assert result.messages or result.updates or result.ignored_reason
    for message in result.messages:
        assert message.external_id.strip()
        assert message.author_id.strip()
        assert message.platform in {"facebook", "instagram", "whatsapp"}
        assert message.kind in {"dm", "comment"}
        assert message.sent_at.tzinfo is not None
        assert all(attachment.url for attachment in message.attachments)
        assert all(key.strip() == key and key for key in message.thread_keys)
        assert message.reply_to_external_id.strip() == message.reply_to_external_id
    for update in result.updates:
        assert update.external_id.strip()
        assert update.state in {"sent", "delivered", "read", "failed"}


@pytest.fixture
def meta_secrets(monkeypatch):
    """Fresh secret values for this test, in the environment variables the channels name."""
    values = {role: secrets.token_hex(16) for role in SECRET_ENV}
    for role, var in SECRET_ENV.items():
        monkeypatch.setenv(var, values[role])
    return values


# --- Messenger --------------------------------------------------------------------------------


def test_messenger_text_message():
    result = parse_fixture("messenger_text.json", "facebook")

    assert result.updates == []
    assert result.ignored_reason == ""
    [message] = result.messages
    assert message.platform == "facebook"
    assert message.external_id == "m_AG5Hz2Uq7qDEx9BvNnqXyQ"
    assert message.author_id == "6712345678901234"
    assert message.kind == "dm"
    assert message.is_public is False
    assert message.is_echo is False
    assert message.sent_at == at("2024-06-13T12:00:00")
    # Meta escapes non-ASCII as \uXXXX; the text comes back decoded.
    assert "café voucher" in message.text
    assert message.reply_to_external_id == "m_PrevPageMessage01"
    assert message.thread_keys == ("m_PrevPageMessage01",)


def test_messenger_attachments_and_location():
    [message] = parse_fixture("messenger_attachments.json", "facebook").messages

    assert [(a.url, a.content_type, a.filename) for a in message.attachments] == [
        ("https://scontent.xx.fbcdn.net/v/t1.15752-9/receipt.jpg", "image/*", ""),
        ("https://cdn.fbsbx.com/v/t59.2708-21/invoice.pdf", "", "invoice.pdf"),
    ]
    assert message.text == "Location: 52.3702, 4.8952"


def test_messenger_text_and_location_are_kept_together():
    body = fixture_json("messenger_attachments.json")
    _message(body)["message"]["text"] = "I am here"

    [message] = parse_body(body, "facebook").messages

    assert message.text == "I am here\nLocation: 52.3702, 4.8952"


def test_feed_comment_time_may_be_an_iso_time():
    body = fixture_json("page_feed_comment.json")
    body["entry"][0]["changes"][0]["value"]["created_time"] = "2024-06-13T14:16:40+0200"

    [message] = parse_body(body, "facebook").messages

    assert message.sent_at == at("2024-06-13T12:16:40")


def test_messenger_echo_is_marked_with_its_recipient():
    [message] = parse_fixture("messenger_echo.json", "facebook").messages

    assert message.is_echo is True
    assert message.author_id == PAGE_ID
    assert message.recipient_id == "6712345678901234"
    assert message.external_id == "m_echo_0001"


def test_messenger_delivery_becomes_updates_for_each_mid():
    result = parse_fixture("messenger_delivery.json", "facebook")

    assert result.messages == []
    assert [(u.external_id, u.state, u.at) for u in result.updates] == [
        ("m_out_0001", "delivered", at("2024-06-13T12:04:59")),
        ("m_out_0002", "delivered", at("2024-06-13T12:04:59")),
    ]


@pytest.mark.parametrize(
    ("name", "reason"),
    [("messenger_read.json", "watermark"), ("messenger_reaction.json", "'reaction'")],
)
def test_messenger_read_receipts_and_reactions_are_ignored(name, reason):
    result = parse_fixture(name, "facebook")

    assert result.messages == [] and result.updates == []
    assert reason in result.ignored_reason


def test_messenger_postback_becomes_a_message_with_the_button_title():
    [message] = parse_fixture("messenger_postback.json", "facebook").messages

    assert message.external_id == "m_postback_0001"
    assert message.text == "Talk to an agent"
    assert message.author_id == "6712345678901234"


def test_postback_without_mid_gets_a_stable_id():
    body = fixture_json("messenger_postback.json")
    del body["entry"][0]["messaging"][0]["postback"]["mid"]

    first = parse_body(body, "facebook").messages[0].external_id
    second = parse_body(body, "facebook").messages[0].external_id

    assert first == second
    assert "6712345678901234" in first


def test_multi_entry_body_yields_every_message_of_this_page_only():
    result = parse_fixture("messenger_multi_entry.json", "facebook")

    assert [(m.external_id, m.author_id) for m in result.messages] == [
        ("m_batch_0001", "6712345678901234"),
        ("m_batch_0002", "6712345678901234"),
        ("m_batch_0003", "7798765432109876"),
    ]
    assert [u.external_id for u in result.updates] == ["m_out_0009"]


def test_a_channel_without_account_id_takes_every_entry():
    result = parse_fixture("messenger_multi_entry.json", "facebook", account_id="")

    assert "m_other_page_0001" in [m.external_id for m in result.messages]


def test_entries_of_another_page_only_are_ignored_with_the_reason():
    result = parse_fixture("messenger_text.json", "facebook", account_id="109999999999999")

    assert result.messages == []
    assert PAGE_ID in result.ignored_reason and "109999999999999" in result.ignored_reason


def test_the_same_message_twice_in_one_body_is_read_once():
    body = fixture_json("messenger_text.json")
    body["entry"].append(copy.deepcopy(body["entry"][0]))

    assert len(parse_body(body, "facebook").messages) == 1


# --- Facebook page feed -----------------------------------------------------------------------


def test_feed_comment_is_a_public_comment_threaded_under_its_post():
    [message] = parse_fixture("page_feed_comment.json", "facebook").messages

    assert message.platform == "facebook"
    assert message.kind == "comment"
    assert message.is_public is True
    assert message.external_id == "810000000000001_920000000000001"
    assert message.author_id == "3141592653589793"
    assert message.author_name == "Dana Example"
    assert message.text == "Your app keeps crashing since the update"
    assert message.sent_at == at("2024-06-13T12:16:40")
    assert message.thread_keys == ("104000000000001_810000000000001",)
    # Its parent is the post itself, not a comment.
    assert message.reply_to_external_id == ""
    assert message.is_echo is False


def test_feed_reply_to_a_comment_names_the_comment_and_keeps_its_photo():
    [message] = parse_fixture("page_feed_reply.json", "facebook").messages

    assert message.reply_to_external_id == "810000000000001_920000000000555"
    assert message.thread_keys == ("104000000000001_810000000000001",)
    assert [a.url for a in message.attachments] == [
        "https://scontent.xx.fbcdn.net/v/t39.30808-6/screenshot.jpg"
    ]


def test_the_pages_own_comment_is_an_echo():
    [message] = parse_fixture("page_feed_by_page.json", "facebook").messages

    assert message.is_echo is True
    assert message.author_id == PAGE_ID
    assert message.reply_to_external_id == "810000000000001_920000000000001"


def test_feed_edits_removals_reactions_and_posts_are_ignored():
    result = parse_fixture("page_feed_ignored.json", "facebook")

    assert result.messages == [] and result.updates == []
    for word in ("edited", "remove", "reaction", "status"):
        assert word in result.ignored_reason


# --- Instagram --------------------------------------------------------------------------------


def test_instagram_direct_message():
    [message] = parse_fixture("instagram_dm.json", "instagram").messages

    assert message.platform == "instagram"
    assert message.kind == "dm"
    assert message.is_public is False
    assert message.author_id == "1131234567890123"
    assert message.text == "Do you ship to Ireland?"
    assert len(message.attachments) == 1
    assert message.attachments[0].url.startswith("https://lookaside.fbsbx.com/")


def test_instagram_echo_and_read():
    [echo] = parse_fixture("instagram_echo.json", "instagram").messages
    read = parse_fixture("instagram_read.json", "instagram")

    assert echo.is_echo is True
    assert echo.recipient_id == "1131234567890123"
    assert [(u.external_id, u.state) for u in read.updates] == [(echo.external_id, "read")]


def test_instagram_comment_is_threaded_under_its_media():
    [message] = parse_fixture("instagram_comment.json", "instagram").messages

    assert message.platform == "instagram"
    assert message.kind == "comment"
    assert message.is_public is True
    assert message.external_id == "17860000000000002"
    assert message.author_id == "1131234567890123"
    assert message.author_handle == "dana.example"
    assert message.thread_keys == ("17900000000000001",)
    assert message.reply_to_external_id == "17860000000000001"
    assert message.sent_at == at("2024-06-13T12:38:20")


def test_instagram_comment_by_the_account_is_an_echo():
    result = parse_fixture("instagram_comment_by_account.json", "instagram")

    [message] = result.messages
    assert message.is_echo is True
    assert message.reply_to_external_id == "17860000000000002"


# --- WhatsApp ---------------------------------------------------------------------------------


def test_whatsapp_text_message():
    [message] = parse_fixture("whatsapp_text.json", "whatsapp").messages

    assert message.platform == "whatsapp"
    assert message.kind == "dm"
    assert message.is_public is False
    assert message.external_id == "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdBRTYwRkI4RjBBMjQ4NkRBRQA="
    assert message.author_id == "+16505551234"
    assert message.author_profile == {"wa_id": "16505551234"}
    assert message.author_name == "Dana Example"
    assert message.text == "Hi, my router shows a red light"
    assert message.sent_at == at("2024-06-13T12:50:00")
    assert message.reply_to_external_id == ""
    assert message.thread_keys == ()


def test_whatsapp_reply_names_the_message_it_answers():
    [message] = parse_fixture("whatsapp_reply.json", "whatsapp").messages

    assert message.reply_to_external_id == "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI1QjA4QkRGMDI3MjA2MzJFNTMA"
    assert message.thread_keys == (message.reply_to_external_id,)


def test_whatsapp_media_become_media_references_with_captions():
    messages = parse_fixture("whatsapp_media.json", "whatsapp").messages

    assert [(m.text, [(a.url, a.content_type, a.filename) for a in m.attachments]) for m in messages] == [
        ("This is the light", [("whatsapp-media:1479537139650973", "image/jpeg", "")]),
        ("Contract", [("whatsapp-media:1003383421387256", "application/pdf", "contract.pdf")]),
        ("", [("whatsapp-media:2116785232052394", "audio/ogg; codecs=opus", "")]),
    ]


def test_whatsapp_location_and_interactive_replies():
    messages = parse_fixture("whatsapp_location_interactive.json", "whatsapp").messages

    assert [(m.text, m.reply_to_external_id) for m in messages] == [
        ("Location: Example Store, 1 Main St, Menlo Park (37.4847, -122.1477)", ""),
        ("Billing question", "wamid.OUTLIST0001"),
        ("Yes, call me", "wamid.OUTBTN0001"),
        ("Stop promotions", "wamid.OUTTPL0001"),
    ]


def test_whatsapp_reaction_is_skipped_and_unsupported_kept_with_the_reason():
    result = parse_fixture("whatsapp_reaction_unsupported.json", "whatsapp")

    [message] = result.messages
    assert message.external_id == "wamid.UNSUP0001"
    assert "Message type unknown" in message.text
    assert "131051" in message.text


def test_whatsapp_statuses_become_delivery_updates():
    result = parse_fixture("whatsapp_statuses.json", "whatsapp")

    assert result.messages == []
    assert [(u.external_id, u.state, u.at) for u in result.updates] == [
        ("wamid.OUT0001", "sent", at("2024-06-13T12:58:20")),
        ("wamid.OUT0001", "delivered", at("2024-06-13T12:58:21")),
        ("wamid.OUT0001", "read", at("2024-06-13T12:59:20")),
        ("wamid.OUT0002", "failed", at("2024-06-13T13:00:00")),
    ]
    failed = result.updates[-1]
    assert "Re-engagement message" in failed.error
    assert "24 hours" in failed.error
    assert all(u.error == "" for u in result.updates[:-1])


def test_whatsapp_for_another_phone_number_is_ignored_with_the_reason():
    result = parse_fixture("whatsapp_other_number.json", "whatsapp")

    assert result.messages == [] and result.updates == []
    assert "199999999999999" in result.ignored_reason
    assert WA_NUMBER_ID in result.ignored_reason


def test_whatsapp_several_changes_and_entries_in_one_body():
    result = parse_fixture("whatsapp_multi.json", "whatsapp")

    assert [(m.external_id, m.author_id, m.author_name) for m in result.messages] == [
        ("wamid.MULTI0001", "+16505551234", "Dana Example"),
        ("wamid.MULTI0002", "+447700900123", "Sam Sample"),
        ("wamid.MULTI0003", "+16505551234", "Dana Example"),
    ]
    assert [(u.external_id, u.state) for u in result.updates] == [("wamid.OUT0003", "delivered")]


# --- what is not for this channel -------------------------------------------------------------


def test_a_body_for_another_kind_of_channel_is_ignored():
    result = parse_fixture("instagram_dm.json", "facebook", account_id=IG_ID)

    assert result.messages == []
    assert "instagram" in result.ignored_reason and "meta-facebook" in result.ignored_reason


def test_an_unknown_object_is_ignored():
    result = parse_body({"object": "user", "entry": [{"id": "1", "changes": []}]}, "facebook")

    assert result.messages == []
    assert "'user'" in result.ignored_reason


# --- malformed bodies -------------------------------------------------------------------------


def _broken(name: str, change) -> dict:
    body = fixture_json(name)
    change(body)
    return body


def _message(body):
    return body["entry"][0]["messaging"][0]


def _wa_value(body):
    return body["entry"][0]["changes"][0]["value"]


MALFORMED = [
    pytest.param(b"{not json", "facebook", "not valid JSON", id="not-json"),
    pytest.param(b"[1, 2]", "facebook", "body is missing or not an object", id="not-an-object"),
    pytest.param({"object": "page"}, "facebook", "entry is missing or not a list", id="no-entry"),
    pytest.param(
        {"object": "page", "entry": ["x"]}, "facebook", "entry[0] is missing", id="entry-not-object"
    ),
    pytest.param(
        _broken("messenger_text.json", lambda b: b["entry"][0].pop("id")),
        "facebook",
        "entry[0].id",
        id="no-page-id",
    ),
    pytest.param(
        _broken("messenger_text.json", lambda b: _message(b)["message"].pop("mid")),
        "facebook",
        "entry[0].messaging[0].message.mid is missing",
        id="no-mid",
    ),
    pytest.param(
        _broken("messenger_text.json", lambda b: _message(b).pop("sender")),
        "facebook",
        "entry[0].messaging[0].sender",
        id="no-sender",
    ),
    pytest.param(
        _broken("messenger_text.json", lambda b: _message(b).update(timestamp="yesterday")),
        "facebook",
        "entry[0].messaging[0].timestamp",
        id="bad-timestamp",
    ),
    pytest.param(
        _broken("messenger_text.json", lambda b: b["entry"][0].update(messaging={"a": 1})),
        "facebook",
        "entry[0].messaging is missing or not a list",
        id="messaging-not-list",
    ),
    pytest.param(
        _broken("page_feed_comment.json", lambda b: b["entry"][0]["changes"][0]["value"].pop("comment_id")),
        "facebook",
        "value.comment_id is missing",
        id="feed-no-comment-id",
    ),
    pytest.param(
        _broken("page_feed_comment.json", lambda b: b["entry"][0]["changes"][0]["value"].pop("from")),
        "facebook",
        "value.from",
        id="feed-no-from",
    ),
    pytest.param(
        _broken("instagram_comment.json", lambda b: b["entry"][0]["changes"][0]["value"].pop("media")),
        "instagram",
        "value.media",
        id="ig-comment-no-media",
    ),
    pytest.param(
        _broken("whatsapp_text.json", lambda b: _wa_value(b).pop("metadata")),
        "whatsapp",
        "value.metadata is missing",
        id="wa-no-metadata",
    ),
    pytest.param(
        _broken("whatsapp_text.json", lambda b: _wa_value(b)["messages"][0].pop("from")),
        "whatsapp",
        "messages[0].from is missing",
        id="wa-no-from",
    ),
    pytest.param(
        _broken(
            "whatsapp_text.json", lambda b: _wa_value(b)["messages"][0].update(**{"from": "not-a-number"})
        ),
        "whatsapp",
        "is not a WhatsApp phone number",
        id="wa-bad-from",
    ),
    pytest.param(
        _broken("whatsapp_text.json", lambda b: _wa_value(b)["messages"][0].update(timestamp="asdf")),
        "whatsapp",
        "messages[0].timestamp",
        id="wa-bad-timestamp",
    ),
    pytest.param(
        _broken("whatsapp_statuses.json", lambda b: _wa_value(b)["statuses"][1].pop("id")),
        "whatsapp",
        "statuses[1].id is missing",
        id="wa-status-no-id",
    ),
    pytest.param(
        _broken("whatsapp_media.json", lambda b: _wa_value(b)["messages"][0]["image"].pop("id")),
        "whatsapp",
        "messages[0].image.id is missing",
        id="wa-image-no-id",
    ),
]


@pytest.mark.parametrize(("body", "kind", "says"), MALFORMED)
def test_malformed_bodies_raise_parse_error_naming_the_field(body, kind, says):
    with pytest.raises(ParseError) as error:
        parse_body(body, kind)

    assert says in str(error.value)


def test_a_business_scoped_user_id_without_a_phone_number_is_refused_clearly():
    body = fixture_json("whatsapp_text.json")
    message = _wa_value(body)["messages"][0]
    message.pop("from")
    message["from_user_id"] = "US.13491208655302741918"

    with pytest.raises(ParseError, match="business-scoped user id"):
        parse_body(body, "whatsapp")


def _paths(node, path=()):
    yield path
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from _paths(child, (*path, key))


REPLACEMENTS = [None, "", " ", "x", 0, -1, 10**30, 1.5, True, [], {}, ["x"], {"x": 1}]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_any_damage_to_a_body_gives_a_result_or_a_parse_error(name):
    """Every field replaced by every wrong type, or removed: never another exception."""
    original = fixture_json(name)
    kind = OBJECT_KINDS[original["object"]]
    outcomes = {"result": 0, "error": 0}
    for path in _paths(original):
        if not path:
            continue
        variants = [*REPLACEMENTS, "<delete>"]
        for replacement in variants:
            body = copy.deepcopy(original)
            parent = body
            for key in path[:-1]:
                parent = parent[key]
            if replacement == "<delete>":
                del parent[path[-1]]
            else:
                parent[path[-1]] = copy.deepcopy(replacement)
            outcome, value = read_or_refuse(body, kind)
            if outcome == "result":
                assert_well_formed(value)
            else:
                assert value, "a ParseError must say what is wrong"
            outcomes[outcome] += 1
    # The damage was real: some variants are refused, and many are still read.
    assert outcomes["error"] > 0
    assert outcomes["result"] > 0


def _corpus_bodies():
    if not CORPUS.is_dir():
        return []
    files = [*sorted((CORPUS / "meta").rglob("*.json")), *sorted((CORPUS / "whatsapp").glob("*.json"))]
    return [path for path in files if "verification" not in path.name]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_every_real_body_in_the_corpus_is_read_ignored_or_refused_cleanly():
    bodies = _corpus_bodies()
    assert bodies, "the corpus folder holds no Meta or WhatsApp bodies"
    tally = {"messages": 0, "updates": 0, "ignored": 0, "refused": 0}
    for path in bodies:
        raw = path.read_bytes()
        kind = OBJECT_KINDS.get(json.loads(raw).get("object"), "facebook")
        outcome, result = read_or_refuse(raw, kind, account_id="")
        if outcome == "error":
            assert result, path.name
            tally["refused"] += 1
            continue
        assert_well_formed(result)
        tally["messages"] += len(result.messages)
        tally["updates"] += len(result.updates)
        tally["ignored"] += bool(result.ignored_reason)
    assert tally["messages"] > 0 and tally["updates"] > 0


# --- handshake, signature, delivery id --------------------------------------------------------


def _handshake(query: dict):
    return RequestFactory().get("/webhooks/meta-facebook/", query)


def test_challenge_echoes_hub_challenge_for_the_right_token(meta_secrets):
    request = _handshake(
        {
            "hub.mode": "subscribe",
            "hub.verify_token": meta_secrets["verify_token"],
            "hub.challenge": "1158201444",
        }
    )

    response = meta.challenge(request, build_channel("facebook"))

    assert response.status_code == 200
    assert response.content == b"1158201444"
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "<right>", "hub.challenge": "1"},
    ],
)
def test_challenge_refuses_a_wrong_or_missing_token(meta_secrets, query):
    query = {k: meta_secrets["verify_token"] if v == "<right>" else v for k, v in query.items()}

    response = meta.challenge(_handshake(query), build_channel("facebook"))

    assert response.status_code == 403
    assert b"1" not in response.content


def test_challenge_without_a_configured_token_refuses(monkeypatch):
    monkeypatch.delenv(SECRET_ENV["verify_token"], raising=False)
    request = _handshake({"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"})

    assert meta.challenge(request, build_channel("facebook")).status_code == 403


def test_requests_that_are_not_a_handshake_get_none(meta_secrets):
    factory = RequestFactory()

    assert meta.challenge(factory.get("/webhooks/meta-facebook/"), build_channel("facebook")) is None
    assert (
        meta.challenge(factory.post("/webhooks/meta-facebook/?hub.mode=subscribe"), build_channel("facebook"))
        is None
    )


def _signed_post(body: bytes, header: str | None):
    extra = {"HTTP_X_HUB_SIGNATURE_256": header} if header is not None else {}
    return RequestFactory().post(
        "/webhooks/meta-whatsapp/", data=body, content_type="application/json", **extra
    )


def test_signature_matches_the_published_vector():
    # The X-Hub-Signature-256 example published in GitHub's webhook documentation.
    assert meta.signature(b"Hello, World!", "It's a Secret to Everybody") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


@pytest.mark.django_db
def test_a_body_signed_with_the_app_secret_over_its_raw_bytes_is_stored_as_sent(
    client, meta_channels, meta_secrets, django_capture_on_commit_callbacks
):
    from cases.models import Message

    channel = meta_channels["facebook"]
    body = fixture_body("messenger_text.json")
    digest = hmac.new(meta_secrets["app_secret"].encode(), body, hashlib.sha256).hexdigest()

    response = post_meta(
        client, channel, body, django_capture_on_commit_callbacks, secret="", header=f"sha256={digest}"
    )

    assert response.status_code == 200
    event = InboundEvent.objects.get(channel=channel)
    assert bytes(event.body) == body  # the bytes as signed, not a re-encoding
    assert event.status == InboundEvent.Status.PROCESSED
    message = Message.objects.get(channel=channel)
    assert message.external_id == "m_AG5Hz2Uq7qDEx9BvNnqXyQ"
    assert message.text == "My order #4411 never arrived, café voucher did not work either"


@pytest.mark.parametrize(
    "header",
    [None, "", "sha256=", "sha256=" + "0" * 64, "sha1=0123456789abcdef0123456789abcdef01234567", "garbage"],
)
def test_verify_refuses_missing_and_wrong_signatures(meta_secrets, header):
    with pytest.raises(SignatureError):
        meta.verify(_signed_post(fixture_body("whatsapp_text.json"), header), build_channel("whatsapp"))


def test_verify_refuses_a_body_changed_after_signing(meta_secrets):
    body = fixture_body("whatsapp_text.json")
    header = meta.signature(body, meta_secrets["app_secret"])
    # Re-serialised JSON is not the signed body, even with the same content.
    reencoded = json.dumps(json.loads(body)).encode()

    with pytest.raises(SignatureError):
        meta.verify(_signed_post(reencoded, header), build_channel("whatsapp"))


def test_verify_without_a_configured_app_secret_refuses(monkeypatch):
    monkeypatch.delenv(SECRET_ENV["app_secret"], raising=False)

    with pytest.raises(SignatureError, match="app_secret"):
        meta.verify(_signed_post(b"{}", "sha256=" + "0" * 64), build_channel("whatsapp"))


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_verify_accepts_the_signatures_computed_over_saved_bodies(monkeypatch):
    vectors = json.loads((CORPUS / "meta" / "meta_verification_and_signature_vectors.json").read_bytes())
    checked = []
    for vector in vectors["locally_computed_vectors_over_saved_fixtures"]["vectors"]:
        path = CORPUS / vector["file"]
        if not path.exists():
            continue
        monkeypatch.setenv(SECRET_ENV["app_secret"], vector["app_secret"])
        body = path.read_bytes()
        # returns nothing when the signature holds
        assert (
            meta.verify(_signed_post(body, vector["X-Hub-Signature-256"]), build_channel("whatsapp")) is None
        )
        # and the same signature over the body with one byte changed is refused
        tampered = body[:-2] + bytes([body[-2] ^ 1]) + body[-1:]
        with pytest.raises(SignatureError, match="does not match"):
            meta.verify(_signed_post(tampered, vector["X-Hub-Signature-256"]), build_channel("whatsapp"))
        checked.append(vector["file"])
    assert len(checked) >= 3, checked


def test_delivery_id_is_the_body_digest():
    body = fixture_body("whatsapp_text.json")
    channel = build_channel("whatsapp")

    first = meta.delivery_id(_signed_post(body, None), channel)

    assert first == hashlib.sha256(body).hexdigest()
    assert meta.delivery_id(_signed_post(body, None), channel) == first
    assert meta.delivery_id(_signed_post(body + b" ", None), channel) != first


# --- sending ----------------------------------------------------------------------------------


@pytest.fixture
def graph():
    with FakeGraph() as server:
        yield server


@pytest.fixture
def meta_channels(department, graph, meta_secrets):
    return {
        kind: ChannelFactory(
            kind=kind,
            name=f"Brand {kind}",
            slug=f"brand-{kind}",
            department=department,
            account_id=account,
            secret_env=SECRET_ENV,
            api_base_url=graph.url,
        )
        for kind, account in ACCOUNTS.items()
    }


def _conversation(channel, *, platform_id: str, inbound_id: str, kind: str = "dm", public: bool = False):
    """A case opened by one inbound message on ``channel``; returns (case, identity, inbound)."""
    customer = CustomerFactory(name="Dana Example")
    identity = IdentityFactory(customer=customer, kind=channel.kind, platform_id=platform_id, handle="")
    case = services.case_open(customer=customer, channel=channel, subject="Help")
    inbound = services.message_add(
        case=case,
        direction="in",
        kind=kind,
        text="Something is wrong",
        channel=channel,
        identity=identity,
        is_public=public,
        external_id=inbound_id,
    )
    return case, identity, inbound


def _reply(case, channel, *, kind="dm", identity=None, reply_to=None, public=False, text="We are on it."):
    return services.message_add(
        case=case,
        direction="out",
        kind=kind,
        text=text,
        channel=channel,
        identity=identity,
        is_public=public,
        reply_to=reply_to,
        delivery_state="queued",
    )


@pytest.mark.parametrize("kind", ["facebook", "instagram"])
def test_send_direct_message_to_messenger_and_instagram(db, meta_channels, graph, meta_secrets, kind):
    channel = meta_channels[kind]
    case, identity, inbound = _conversation(channel, platform_id="6712345678901234", inbound_id="m_in_1")
    message = _reply(case, channel, identity=identity, reply_to=inbound)

    result = meta.send(message, channel)

    [request] = graph.requests
    assert request.path == "/v21.0/me/messages"
    assert request.headers["Authorization"] == f"Bearer {meta_secrets['access_token']}"
    assert request.body == {
        "recipient": {"id": "6712345678901234"},
        "message": {"text": "We are on it."},
        "messaging_type": "RESPONSE",
    }
    assert result.external_id.startswith("m_fake")
    assert result.sent_at is not None


@pytest.mark.parametrize(("kind", "edge"), [("facebook", "comments"), ("instagram", "replies")])
def test_send_comment_reply(db, meta_channels, graph, kind, edge):
    channel = meta_channels[kind]
    comment_id = "810000000000001_920000000000001" if kind == "facebook" else "17860000000000002"
    case, identity, inbound = _conversation(
        channel, platform_id="3141592653589793", inbound_id=comment_id, kind="comment", public=True
    )
    message = _reply(case, channel, kind="comment", identity=identity, reply_to=inbound, public=True)

    result = meta.send(message, channel)

    [request] = graph.requests
    assert request.path == f"/v21.0/{comment_id}/{edge}"
    assert request.body == {"message": "We are on it."}
    assert result.external_id.endswith(tuple("0123456789"))
    assert result.external_id.startswith(comment_id.split("_")[0])


def test_comment_reply_without_the_comment_it_answers_is_refused(db, meta_channels, graph):
    channel = meta_channels["facebook"]
    case, identity, _ = _conversation(
        channel, platform_id="3141592653589793", inbound_id="c1", kind="comment"
    )
    message = _reply(case, channel, kind="comment", identity=identity, public=True)

    with pytest.raises(SendError) as error:
        meta.send(message, channel)

    assert error.value.retryable is False
    assert graph.requests == []


def test_send_whatsapp_reply_with_context(db, meta_channels, graph):
    channel = meta_channels["whatsapp"]
    case, identity, inbound = _conversation(channel, platform_id="+16505551234", inbound_id="wamid.IN0001")
    message = _reply(case, channel, identity=identity, reply_to=inbound)

    result = meta.send(message, channel)

    [request] = graph.requests
    assert request.path == f"/v21.0/{WA_NUMBER_ID}/messages"
    assert request.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "text",
        "text": {"body": "We are on it.", "preview_url": False},
        "context": {"message_id": "wamid.IN0001"},
    }
    assert result.external_id.startswith("wamid.FAKE")


def test_whatsapp_message_that_answers_nothing_has_no_context(db, meta_channels, graph):
    channel = meta_channels["whatsapp"]
    case, identity, _ = _conversation(channel, platform_id="+16505551234", inbound_id="wamid.IN0002")

    meta.send(_reply(case, channel, identity=identity), channel)

    assert "context" not in graph.requests[0].body


def test_without_an_identity_the_reply_goes_to_who_wrote_last_on_that_channel(db, meta_channels, graph):
    whatsapp, messenger = meta_channels["whatsapp"], meta_channels["facebook"]
    case, first, _ = _conversation(whatsapp, platform_id="+16505551234", inbound_id="wamid.IN0003")
    second = IdentityFactory(customer=case.customer, kind="whatsapp", platform_id="+447700900123")
    services.message_add(
        case=case,
        direction="in",
        kind="dm",
        text="my other phone",
        channel=whatsapp,
        identity=second,
        external_id="wamid.IN0004",
        sent_at=datetime.now(UTC),
    )
    # Later, on another channel: not a WhatsApp recipient.
    messenger_identity = IdentityFactory(
        customer=case.customer, kind="facebook", platform_id="6712345678901234"
    )
    services.message_add(
        case=case,
        direction="in",
        kind="dm",
        text="also here",
        channel=messenger,
        identity=messenger_identity,
        external_id="m_in_9",
    )

    meta.send(_reply(case, whatsapp), whatsapp)

    assert graph.requests[0].body["to"] == "447700900123"


def test_without_any_recipient_sending_is_refused(db, meta_channels, graph):
    channel = meta_channels["facebook"]
    case, _, _ = _conversation(
        meta_channels["whatsapp"], platform_id="+16505551234", inbound_id="wamid.IN0005"
    )

    with pytest.raises(SendError) as error:
        meta.send(_reply(case, channel), channel)

    assert error.value.retryable is False
    assert case.reference in str(error.value)


GRAPH_ERRORS = [
    pytest.param(
        dict(
            status=400,
            message="Calls to this api have exceeded the rate limit.",
            code=613,
            headers={"Retry-After": "30"},
        ),
        True,
        30.0,
        id="rate-limit-613-retry-after",
    ),
    pytest.param(
        dict(
            status=400,
            message="Application request limit reached",
            code=4,
            headers={
                "X-Business-Use-Case-Usage": json.dumps(
                    {
                        "104000000000001": [
                            {"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 5}
                        ]
                    }
                )
            },
        ),
        True,
        300.0,
        id="app-limit-4-usage-header",
    ),
    pytest.param(
        dict(status=403, message="User request limit reached", code=17), True, None, id="user-limit-17"
    ),
    pytest.param(
        dict(status=429, message="Rate limit hit", code=130429), True, None, id="whatsapp-throughput"
    ),
    pytest.param(
        dict(
            status=500,
            message="An unexpected error has occurred. Please retry your request later.",
            code=2,
            type="OAuthException",
        ),
        True,
        None,
        id="service-unavailable",
    ),
    pytest.param(
        dict(status=400, message="(#100) The parameter recipient is required", code=100),
        False,
        None,
        id="invalid-parameter",
    ),
    pytest.param(
        dict(
            status=403,
            message="(#10) This message is sent outside of allowed window.",
            code=10,
            subcode=2018278,
        ),
        False,
        None,
        id="outside-window",
    ),
    pytest.param(
        dict(status=400, message="Recipient phone number not in allowed list", code=131030),
        False,
        None,
        id="whatsapp-not-allowed",
    ),
]


@pytest.mark.parametrize(("error", "retryable", "retry_after"), GRAPH_ERRORS)
def test_graph_errors_say_whether_to_retry(db, meta_channels, graph, error, retryable, retry_after):
    channel = meta_channels["facebook"]
    case, identity, _ = _conversation(channel, platform_id="6712345678901234", inbound_id="m_in_2")
    graph.error(**error)

    with pytest.raises(SendError) as raised:
        meta.send(_reply(case, channel, identity=identity), channel)

    assert raised.value.retryable is retryable
    assert raised.value.retry_after == retry_after
    assert raised.value.status == error["status"]
    assert error["message"] in str(raised.value)
    assert f"code {error['code']}" in str(raised.value)


def test_an_http_date_retry_after_is_read_as_seconds(db, meta_channels, graph):
    channel = meta_channels["facebook"]
    case, identity, _ = _conversation(channel, platform_id="6712345678901234", inbound_id="m_in_3")
    later = datetime.now(UTC).timestamp() + 120
    graph.reply(429, "Too Many Requests", headers={"Retry-After": formatdate(later, usegmt=True)})

    with pytest.raises(SendError) as raised:
        meta.send(_reply(case, channel, identity=identity), channel)

    assert raised.value.retryable is True
    assert 100 <= raised.value.retry_after <= 120


def test_a_server_error_without_json_is_retryable(db, meta_channels, graph):
    channel = meta_channels["whatsapp"]
    case, identity, _ = _conversation(channel, platform_id="+16505551234", inbound_id="wamid.IN0006")
    graph.reply(502, "<html>Bad Gateway</html>")

    with pytest.raises(SendError) as raised:
        meta.send(_reply(case, channel, identity=identity), channel)

    assert raised.value.retryable is True
    assert raised.value.status == 502


def test_a_slow_graph_api_times_out_and_is_retryable(db, meta_channels, graph, monkeypatch):
    monkeypatch.setattr(meta, "TIMEOUT", httpx.Timeout(0.2))
    channel = meta_channels["facebook"]
    case, identity, _ = _conversation(channel, platform_id="6712345678901234", inbound_id="m_in_4")
    graph.reply(200, {"recipient_id": "6712345678901234", "message_id": "m_late"}, delay=1.0)

    with pytest.raises(SendError, match="did not answer in time") as raised:
        meta.send(_reply(case, channel, identity=identity), channel)

    assert raised.value.retryable is True


def test_an_unreachable_graph_api_is_retryable(db, meta_channels):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    channel = meta_channels["facebook"]
    channel.api_base_url = f"http://127.0.0.1:{closed_port}"
    case, identity, _ = _conversation(channel, platform_id="6712345678901234", inbound_id="m_in_5")

    with pytest.raises(SendError) as raised:
        meta.send(_reply(case, channel, identity=identity), channel)

    assert raised.value.retryable is True


def test_a_success_without_an_id_is_not_retried(db, meta_channels, graph):
    channel = meta_channels["whatsapp"]
    case, identity, _ = _conversation(channel, platform_id="+16505551234", inbound_id="wamid.IN0007")
    graph.reply(200, {"messaging_product": "whatsapp", "messages": []})

    with pytest.raises(SendError) as raised:
        meta.send(_reply(case, channel, identity=identity), channel)

    # It may have gone out: sending again could reach the customer twice.
    assert raised.value.retryable is False


def test_sending_without_an_access_token_is_refused(db, meta_channels, graph, monkeypatch):
    monkeypatch.delenv(SECRET_ENV["access_token"])
    channel = meta_channels["facebook"]
    case, identity, _ = _conversation(channel, platform_id="6712345678901234", inbound_id="m_in_6")

    with pytest.raises(SendError, match="access_token") as raised:
        meta.send(_reply(case, channel, identity=identity), channel)

    assert raised.value.retryable is False
    assert graph.requests == []


def test_the_outbox_sends_through_the_meta_connector(db, meta_channels, graph):
    from connectors.outbound import message_send

    channel = meta_channels["whatsapp"]
    case, identity, inbound = _conversation(channel, platform_id="+16505551234", inbound_id="wamid.IN0008")
    first = _reply(case, channel, identity=identity, reply_to=inbound)
    second = _reply(case, channel, identity=identity, text="Second try")
    graph.error(400, "Rate limit hit", 130429, headers={"Retry-After": "45"})

    assert message_send(message_id=first.pk) == 45.0
    assert message_send(message_id=first.pk) is None
    assert message_send(message_id=second.pk) is None

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.delivery_state == "sent"
    assert first.external_id.startswith("wamid.FAKE")
    assert second.external_id.startswith("wamid.FAKE") and second.external_id != first.external_id
    assert [r.body["text"]["body"] for r in graph.requests] == [
        "We are on it.",
        "We are on it.",
        "Second try",
    ]


# --- end to end: signed webhooks through /webhooks/<slug>/ ------------------------------------


def post_meta(client, channel, body: bytes | dict, capture, *, secret: str, header: str | None = None):
    """POST a body the way Meta does (signed with the app secret) and run what it queued."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    signed = (
        header
        if header is not None
        else "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    )
    with capture(execute=True):
        return client.post(
            f"/webhooks/{channel.slug}/",
            data=raw,
            content_type="application/json",
            HTTP_X_HUB_SIGNATURE_256=signed,
        )


def wa_text(
    wamid: str, text: str, *, wa_id: str = "16505551234", context: str = "", ts: int = 1718283000
) -> dict:
    body = fixture_json("whatsapp_text.json")
    value = _wa_value(body)
    value["contacts"][0]["wa_id"] = wa_id
    message = value["messages"][0]
    message.update({"id": wamid, "from": wa_id, "timestamp": str(ts), "text": {"body": text}})
    if context:
        message["context"] = {"from": "15550783881", "id": context}
    return body


def wa_status(wamid: str, status: str, ts: int = 1718290000) -> dict:
    body = fixture_json("whatsapp_statuses.json")
    [first] = [s for s in _wa_value(body)["statuses"] if s["status"] == status][:1]
    first.update(id=wamid, timestamp=str(ts))
    _wa_value(body)["statuses"] = [first]
    return body


@pytest.mark.django_db
def test_signed_whatsapp_message_opens_one_case(
    client, meta_channels, meta_secrets, django_capture_on_commit_callbacks
):
    from cases.models import Case, Message

    channel = meta_channels["whatsapp"]
    body = fixture_body("whatsapp_text.json")

    response = post_meta(
        client, channel, body, django_capture_on_commit_callbacks, secret=meta_secrets["app_secret"]
    )

    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert event.status == "processed", event.error
    assert event.delivery_id == hashlib.sha256(body).hexdigest()
    case = Case.objects.get()
    message = Message.objects.get()
    assert message.case == case
    assert message.text == "Hi, my router shows a red light"
    assert message.direction == "in"
    assert message.channel == channel
    assert (message.identity.kind, message.identity.platform_id) == ("whatsapp", "+16505551234")
    assert message.identity.display_name == "Dana Example"
    assert case.customer.name == "Dana Example"

    # Meta delivers again: nothing changes.
    again = post_meta(
        client, channel, body, django_capture_on_commit_callbacks, secret=meta_secrets["app_secret"]
    )
    assert again.status_code == 200
    assert (InboundEvent.objects.count(), Message.objects.count(), Case.objects.count()) == (1, 1, 1)


@pytest.mark.django_db
def test_handshake_and_forged_posts_through_the_view(
    client, meta_channels, meta_secrets, django_capture_on_commit_callbacks
):
    channel = meta_channels["whatsapp"]
    url = f"/webhooks/{channel.slug}/"

    ok = client.get(
        url,
        {"hub.mode": "subscribe", "hub.verify_token": meta_secrets["verify_token"], "hub.challenge": "42"},
    )
    wrong = client.get(url, {"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "42"})
    forged = post_meta(
        client,
        channel,
        fixture_body("whatsapp_text.json"),
        django_capture_on_commit_callbacks,
        secret="not-the-app-secret",
    )
    unsigned = post_meta(
        client,
        channel,
        fixture_body("whatsapp_text.json"),
        django_capture_on_commit_callbacks,
        secret=meta_secrets["app_secret"],
        header="",
    )

    assert (ok.status_code, ok.content) == (200, b"42")
    assert wrong.status_code == 403
    assert forged.status_code == 403 and unsigned.status_code == 403
    assert InboundEvent.objects.count() == 0


@pytest.mark.django_db
def test_malformed_and_foreign_bodies_are_stored_failed_or_ignored(
    client, meta_channels, meta_secrets, django_capture_on_commit_callbacks
):
    channel = meta_channels["whatsapp"]
    broken = fixture_json("whatsapp_text.json")
    _wa_value(broken)["messages"][0].pop("from")
    secret = meta_secrets["app_secret"]

    responses = [
        post_meta(client, channel, b'{"object": ', django_capture_on_commit_callbacks, secret=secret),
        post_meta(client, channel, broken, django_capture_on_commit_callbacks, secret=secret),
        post_meta(
            client,
            channel,
            fixture_body("whatsapp_other_number.json"),
            django_capture_on_commit_callbacks,
            secret=secret,
        ),
    ]

    assert [r.status_code for r in responses] == [200, 200, 200]
    events = list(InboundEvent.objects.order_by("id"))
    assert [e.status for e in events] == ["failed", "failed", "ignored"]
    assert "not valid JSON" in events[0].error
    assert "messages[0].from is missing" in events[1].error
    assert "199999999999999" in events[2].error


@pytest.mark.django_db
def test_whatsapp_reply_threads_on_our_message_and_statuses_follow_it(
    client, meta_channels, meta_secrets, graph, django_capture_on_commit_callbacks
):
    from cases.models import Case, Message
    from connectors.outbound import message_send

    channel = meta_channels["whatsapp"]
    secret = meta_secrets["app_secret"]
    post_meta(
        client,
        channel,
        wa_text("wamid.IN1", "Router is dead"),
        django_capture_on_commit_callbacks,
        secret=secret,
    )
    case = Case.objects.get()
    inbound = Message.objects.get(external_id="wamid.IN1")
    reply = _reply(case, channel, identity=inbound.identity, reply_to=inbound, text="Can you send a photo?")
    assert message_send(message_id=reply.pk) is None
    reply.refresh_from_db()
    assert graph.requests[0].body["context"] == {"message_id": "wamid.IN1"}
    # The customer also opened a second conversation meanwhile (another case)...
    other = services.case_open(customer=case.customer, channel=channel, subject="Other matter")
    services.message_add(
        case=other,
        direction="in",
        kind="dm",
        text="Also, my bill",
        channel=channel,
        identity=inbound.identity,
        external_id="wamid.OTHER",
        sent_at=datetime.now(UTC),
    )

    # ...and answers our question by replying to our message.
    post_meta(
        client,
        channel,
        wa_text("wamid.IN2", "Here it is", context=reply.external_id, ts=1718283900),
        django_capture_on_commit_callbacks,
        secret=secret,
    )
    for state in ("delivered", "read"):
        post_meta(
            client,
            channel,
            wa_status(reply.external_id, state),
            django_capture_on_commit_callbacks,
            secret=secret,
        )

    answer = Message.objects.get(external_id="wamid.IN2")
    assert answer.case == case != other
    assert answer.reply_to == reply
    reply.refresh_from_db()
    assert reply.delivery_state == "read"


@pytest.mark.django_db
def test_whatsapp_failed_status_marks_our_message_failed_with_the_reason(
    client, meta_channels, meta_secrets, graph, django_capture_on_commit_callbacks
):
    from cases.models import Case, CaseEvent
    from connectors.outbound import message_send

    channel = meta_channels["whatsapp"]
    secret = meta_secrets["app_secret"]
    post_meta(
        client, channel, wa_text("wamid.IN3", "Hello"), django_capture_on_commit_callbacks, secret=secret
    )
    case = Case.objects.get()
    reply = _reply(case, channel, identity=case.messages.get().identity)
    message_send(message_id=reply.pk)
    reply.refresh_from_db()

    post_meta(
        client,
        channel,
        wa_status(reply.external_id, "failed"),
        django_capture_on_commit_callbacks,
        secret=secret,
    )

    reply.refresh_from_db()
    assert reply.delivery_state == "failed"
    assert "Re-engagement message" in reply.delivery_error
    assert CaseEvent.objects.filter(case=case, kind="delivery", message=reply).exists()


@pytest.mark.django_db
def test_messenger_echo_of_our_reply_adds_nothing(
    client, meta_channels, meta_secrets, graph, django_capture_on_commit_callbacks
):
    from cases.models import Message
    from connectors.outbound import message_send

    channel = meta_channels["facebook"]
    secret = meta_secrets["app_secret"]
    post_meta(
        client,
        channel,
        fixture_body("messenger_text.json"),
        django_capture_on_commit_callbacks,
        secret=secret,
    )
    inbound = Message.objects.get()
    reply = _reply(inbound.case, channel, identity=inbound.identity, text="Sorry to hear that, we are on it.")
    message_send(message_id=reply.pk)
    reply.refresh_from_db()
    echo = fixture_json("messenger_echo.json")
    echo["entry"][0]["messaging"][0]["message"]["mid"] = reply.external_id

    post_meta(client, channel, echo, django_capture_on_commit_callbacks, secret=secret)

    assert Message.objects.count() == 2
    assert graph.requests[0].body["recipient"] == {"id": "6712345678901234"}
    assert InboundEvent.objects.order_by("-id").first().status == "processed"


@pytest.mark.django_db
def test_comment_thread_on_a_page_post_is_one_case(
    client, meta_channels, meta_secrets, django_capture_on_commit_callbacks
):
    from cases.models import Case, Message

    channel = meta_channels["facebook"]
    secret = meta_secrets["app_secret"]
    first = fixture_json("page_feed_comment.json")
    reply = fixture_json("page_feed_reply.json")
    reply["entry"][0]["changes"][0]["value"]["parent_id"] = "810000000000001_920000000000001"

    post_meta(client, channel, first, django_capture_on_commit_callbacks, secret=secret)
    post_meta(client, channel, reply, django_capture_on_commit_callbacks, secret=secret)
    post_meta(
        client,
        channel,
        fixture_body("page_feed_by_page.json"),
        django_capture_on_commit_callbacks,
        secret=secret,
    )

    case = Case.objects.get()
    assert list(case.messages.values_list("direction", "kind", "is_public")) == [
        ("in", "comment", True),
        ("in", "comment", True),
        ("out", "comment", True),
    ]
    assert Message.objects.get(external_id="810000000000001_920000000000777").reply_to.external_id == (
        "810000000000001_920000000000001"
    )


@pytest.mark.django_db
def test_two_customers_commenting_on_one_post_get_two_cases(
    client, meta_channels, meta_secrets, django_capture_on_commit_callbacks
):
    from cases.models import Case

    channel = meta_channels["facebook"]
    secret = meta_secrets["app_secret"]
    other = fixture_json("page_feed_comment.json")
    value = other["entry"][0]["changes"][0]["value"]
    value.update(comment_id="810000000000001_920000000000999", message="Same problem here")
    value["from"] = {"id": "2718281828459045", "name": "Sam Sample"}

    post_meta(
        client,
        channel,
        fixture_body("page_feed_comment.json"),
        django_capture_on_commit_callbacks,
        secret=secret,
    )
    post_meta(client, channel, other, django_capture_on_commit_callbacks, secret=secret)

    assert Case.objects.count() == 2
