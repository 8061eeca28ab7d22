"""The X connector: parsing Account Activity bodies, and sending through a fake API v2."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from cases import services
from connectors import x
from connectors.base import InboundMessage, ParseError, ParseResult, SendError
from connectors.models import InboundEvent
from tests import factories
from tests.connectors.helpers import CORPUS, X_ACCESS_TOKEN, FakeAPI, fixture_bytes, fixture_json

OURS = SimpleNamespace(account_id="777", slug="brand-x")


def parse_body(body: bytes | dict, channel=OURS) -> ParseResult:
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    return x.parse(InboundEvent(body=body), channel)


def parse_fixture(name: str) -> ParseResult:
    return parse_body(fixture_bytes("x", name))


# --- parsing ----------------------------------------------------------------------------


def test_mention_becomes_a_public_post_with_the_author_profile():
    (message,) = parse_fixture("mention.json").messages

    assert message == InboundMessage(
        platform="x",
        external_id="1050118621198921728",
        author_id="5150",
        kind="post",
        sent_at=datetime(2018, 10, 10, 20, 19, 24, tzinfo=UTC),
        text="@brand my router has been dead since Monday and nobody answers the phone",
        is_public=True,
        author_handle="rosa_d",
        author_name="Rosa Diaz",
        author_follower_count=1200,
        author_verified=False,
        author_profile={
            "profile_image_url_https": "https://pbs.twimg.com/profile_images/1/rosa_normal.jpg",
            "location": "Brooklyn",
            "protected": False,
        },
    )


def test_reply_names_the_tweet_it_answers():
    (message,) = parse_fixture("reply.json").messages
    assert message.reply_to_external_id == "1050118621198921728"
    assert not message.is_echo


def test_truncated_tweet_uses_extended_full_text():
    (message,) = parse_fixture("long_tweet.json").messages
    assert message.text.endswith("a refund for the days without service.")


def test_quote_keeps_the_quoted_post_as_thread_key_and_quoted_text():
    (message,) = parse_fixture("quote.json").messages
    assert message.thread_keys == ("1050300000000000001",)
    assert message.quoted_text == "@cboyle Sorry to hear that! Please restart your router."


def test_direct_message_uses_the_users_map_and_millisecond_time():
    (message,) = parse_fixture("dm.json").messages

    assert (message.kind, message.is_public, message.author_id) == ("dm", False, "5150")
    assert message.sent_at == datetime(2018, 10, 10, 21, 46, 40, tzinfo=UTC)
    assert message.author_handle == "rosa_d" and message.author_verified is True
    assert message.author_follower_count == 1203


def test_direct_message_media_becomes_an_attachment_link():
    (message,) = parse_fixture("dm_media.json").messages
    (attachment,) = message.attachments
    assert attachment.url.startswith("https://ton.x.com/") and attachment.filename == "bill.jpg"
    assert attachment.content_type == "image/jpeg" and attachment.content is None


def test_our_own_tweet_and_dm_are_echoes_addressed_to_the_customer():
    (tweet,) = parse_fixture("echo_reply.json").messages
    (dm,) = parse_fixture("echo_dm.json").messages
    assert tweet.is_echo and tweet.recipient_id == "5150" and tweet.reply_to_external_id
    assert dm.is_echo and dm.recipient_id == "5150"


def test_echo_is_recognised_from_for_user_id_when_the_channel_has_no_account_id():
    (dm,) = parse_body(fixture_bytes("x", "echo_dm.json"), SimpleNamespace(account_id="", slug="s")).messages
    assert dm.is_echo


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("favorite.json", "favourites"),
        ("follow_typing.json", "follows, typing indicators"),
        ("retweet.json", "repost 1050160000000000099"),
    ],
)
def test_activity_is_ignored_with_its_reason(name, expected):
    result = parse_fixture(name)
    assert result.messages == [] and expected in result.ignored_reason


def test_unknown_event_type_is_ignored_with_its_name():
    result = parse_body({"for_user_id": "777", "space_events": [{}]})
    assert result.ignored_reason == "Nothing to ingest: unhandled event type space_events."


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1, 2]", "JSON list, not an object"),
        (b"{", "not JSON"),
        ({"hello": "world"}, "no event key"),
        ({"for_user_id": "777"}, "no event key"),
        ({"for_user_id": "777", "tweet_create_events": {"id": 1}}, "tweet_create_events is not a list"),
        ({"for_user_id": "777", "tweet_create_events": ["x"]}, "tweet_create_events[0] is not an object"),
        ({"for_user_id": "777", "tweet_create_events": [{"user": {"id_str": "1"}}]}, "id_str is missing"),
        (
            {"for_user_id": "777", "tweet_create_events": [{"id_str": "5", "user": {"id_str": "1"}}]},
            "tweet_create_events[0] (5): created_at is missing",
        ),
        (
            {
                "for_user_id": "777",
                "tweet_create_events": [{"id_str": "5", "created_at": "yesterday", "user": {"id_str": "1"}}],
            },
            "'yesterday' is not an X timestamp",
        ),
        (
            {"direct_message_events": [{"type": "message_create", "id": "9", "created_timestamp": "1"}]},
            "message_create is missing",
        ),
        (
            {
                "direct_message_events": [
                    {
                        "type": "message_create",
                        "id": "9",
                        "created_timestamp": "soon",
                        "message_create": {"sender_id": "1"},
                    }
                ]
            },
            "created_timestamp 'soon' is not milliseconds",
        ),
        ({"for_user_id": "777", "users": [], "direct_message_events": []}, "users is not an object"),
        ({"data": {"event_type": "post.create", "payload": {"text": "hi"}}}, "payload.id is missing"),
    ],
)
def test_malformed_structure_is_a_parse_error_naming_the_field(body, message):
    with pytest.raises(ParseError) as error:
        parse_body(body)
    assert message in str(error.value)


def test_activity_api_reply_and_dm_are_read():
    reply = {
        "data": {
            "event_uuid": "1",
            "filter": {"user_id": "777"},
            "event_type": "post.reply.create",
            "tag": "replies",
            "payload": {
                "id": "2090000000000000001",
                "author_id": "5150",
                "created_at": "2026-08-12T18:00:00.000Z",
                "conversation_id": "2080761390344937796",
                "in_reply_to_user_id": "777",
                "referenced_tweets": [{"type": "replied_to", "id": "2080761390344937796"}],
                "text": "@brand still broken",
            },
            "includes": {
                "users": [
                    {
                        "id": "5150",
                        "username": "rosa_d",
                        "name": "Rosa",
                        "public_metrics": {"followers_count": 9},
                    }
                ]
            },
        }
    }
    (message,) = parse_body(reply).messages
    assert message.reply_to_external_id == "2080761390344937796"
    assert message.thread_keys == ("2080761390344937796",)
    assert (message.author_handle, message.author_follower_count) == ("rosa_d", 9)
    assert message.sent_at == datetime(2026, 8, 12, 18, 0, tzinfo=UTC)

    dm = {
        "data": {
            "event_type": "dm.received",
            "filter": {"user_id": "777"},
            "payload": fixture_json("x", "dm.json"),
        }
    }
    (message,) = parse_body(dm).messages
    assert message.kind == "dm" and message.author_id == "5150"


def x_bodies() -> list[Path]:
    folder = CORPUS / "twitter"
    return sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []


@pytest.mark.parametrize("path", x_bodies() or [None], ids=lambda p: p.name if p else "absent")
def test_every_real_x_body_parses_or_fails_with_a_reason(path):
    if path is None:
        pytest.skip("the shared corpus is not on this machine")
    try:
        result = parse_body(path.read_bytes(), SimpleNamespace(account_id="", slug="corpus"))
    except ParseError as error:
        failure = str(error)
    else:
        failure = None
    if failure is not None:
        assert failure.strip()
        return
    assert isinstance(result, ParseResult)
    for message in result.messages:
        assert message.external_id and message.author_id
        assert message.sent_at.tzinfo is not None
        assert message.kind in ("post", "dm")
    assert result.messages or result.ignored_reason


# --- signatures -------------------------------------------------------------------------


def test_signature_is_base64_hmac_sha256_with_prefix():
    # Known answer: HMAC-SHA256(key="secret", msg="message"), base64.
    assert x.signature("secret", b"message") == "sha256=i19IcCmVwVmMVz2x4hhmqbgl1KeU0WnXBgoDYFeWNgs="


# --- sending ----------------------------------------------------------------------------


@pytest.fixture
def fake_x():
    with FakeAPI() as api:
        yield api


@pytest.fixture
def sending_channel(x_channel, fake_x):
    x_channel.api_base_url = fake_x.url
    x_channel.save(update_fields=["api_base_url"])
    return x_channel


@pytest.fixture
def conversation(sending_channel, customer):
    """Rosa's tweet on a case, and the identity we answer."""
    identity = factories.IdentityFactory(customer=customer, kind="x", platform_id="5150", handle="rosa_d")
    case = services.case_open(customer=customer, channel=sending_channel, subject="Router")
    tweet = services.message_add(
        case=case,
        direction="in",
        kind="post",
        text="@brand router dead",
        channel=sending_channel,
        identity=identity,
        is_public=True,
        external_id="1050118621198921728",
    )
    return SimpleNamespace(case=case, tweet=tweet, identity=identity)


def outbound(conversation, *, kind="post", text="Sorry! We are on it.", channel=None):
    return services.message_add(
        case=conversation.case,
        direction="out",
        kind=kind,
        text=text,
        channel=channel or conversation.tweet.channel,
        identity=conversation.identity,
        is_public=kind == "post",
        reply_to=conversation.tweet if kind == "post" else None,
        delivery_state="queued",
    )


@pytest.mark.django_db
def test_public_reply_posts_to_tweets_in_reply_to_the_customer(fake_x, sending_channel, conversation):
    fake_x.respond(201, {"data": {"id": "1050125000000000000", "text": "Sorry! We are on it."}})

    result = x.send(outbound(conversation), sending_channel)

    assert result.external_id == "1050125000000000000" and result.sent_at is not None
    (request,) = fake_x.requests
    assert request["path"] == "/2/tweets"
    assert request["json"] == {
        "text": "Sorry! We are on it.",
        "reply": {"in_reply_to_tweet_id": "1050118621198921728"},
    }
    assert request["headers"]["authorization"] == f"Bearer {X_ACCESS_TOKEN}"


@pytest.mark.django_db
def test_dm_posts_to_the_conversation_with_the_customer(fake_x, sending_channel, conversation):
    fake_x.respond(201, {"data": {"dm_conversation_id": "777-5150", "dm_event_id": "1582838223000000000"}})

    result = x.send(outbound(conversation, kind="dm", text="Hi Rosa"), sending_channel)

    assert result.external_id == "1582838223000000000"
    (request,) = fake_x.requests
    assert request["path"] == "/2/dm_conversations/with/5150/messages"
    assert request["json"] == {"text": "Hi Rosa"}


@pytest.mark.django_db
def test_rate_limit_is_retryable_after_retry_after(fake_x, sending_channel, conversation):
    fake_x.respond(429, {"title": "Too Many Requests", "detail": "Too Many Requests"}, {"Retry-After": "120"})

    with pytest.raises(SendError) as error:
        x.send(outbound(conversation), sending_channel)

    assert error.value.retryable is True and error.value.retry_after == 120 and error.value.status == 429


@pytest.mark.django_db
def test_rate_limit_without_retry_after_uses_the_reset_time(fake_x, sending_channel, conversation):
    fake_x.respond(429, {"title": "Too Many Requests"}, {"x-rate-limit-reset": str(int(time.time()) + 300)})

    with pytest.raises(SendError) as error:
        x.send(outbound(conversation), sending_channel)

    assert error.value.retryable is True and 290 <= error.value.retry_after <= 300


@pytest.mark.django_db
def test_server_error_is_retryable(fake_x, sending_channel, conversation):
    fake_x.respond(503, {"title": "Service Unavailable"})

    with pytest.raises(SendError) as error:
        x.send(outbound(conversation), sending_channel)

    assert error.value.retryable is True and error.value.status == 503


@pytest.mark.django_db
def test_refusal_is_final_and_carries_the_platform_error(fake_x, sending_channel, conversation):
    fake_x.respond(
        400,
        {
            "errors": [{"message": "Your Tweet text is too long."}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
        },
    )

    with pytest.raises(SendError) as error:
        x.send(outbound(conversation), sending_channel)

    assert error.value.retryable is False and error.value.status == 400
    assert "Your Tweet text is too long." in str(error.value)


@pytest.mark.django_db
def test_timeout_is_retryable(fake_x, sending_channel, conversation, monkeypatch):
    import httpx

    monkeypatch.setattr(x, "TIMEOUT", httpx.Timeout(0.2))
    fake_x.delay = 1.0
    fake_x.respond(201, {"data": {"id": "1"}})

    with pytest.raises(SendError) as error:
        x.send(outbound(conversation), sending_channel)

    assert error.value.retryable is True and "in time" in str(error.value)


@pytest.mark.django_db
def test_missing_token_is_a_final_error(sending_channel, conversation, monkeypatch):
    monkeypatch.delenv("CASELINE_TEST_X_ACCESS_TOKEN")

    with pytest.raises(SendError) as error:
        x.send(outbound(conversation), sending_channel)

    assert error.value.retryable is False and "CASELINE_TEST_X_ACCESS_TOKEN" in str(error.value)


@pytest.mark.django_db
def test_success_without_an_id_is_not_retried(fake_x, sending_channel, conversation):
    fake_x.respond(200, {"data": {}})

    with pytest.raises(SendError) as error:
        x.send(outbound(conversation), sending_channel)

    assert error.value.retryable is False
