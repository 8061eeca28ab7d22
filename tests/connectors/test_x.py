"""The X connector: parsing Account Activity bodies, and sending through a fake API v2."""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from cases import services
from cases.models import Message
from connectors import x
from connectors.base import InboundMessage, ParseError, ParseResult, SendError
from connectors.models import InboundEvent
from tests import factories
from tests.connectors.helpers import (
    CORPUS,
    X_ACCESS_TOKEN,
    FakeAPI,
    fixture_bytes,
    fixture_json,
    post_x_webhook,
)

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


# --- text as its author typed it -------------------------------------------------------
# X sends post and DM text with "&", "<" and ">" escaped as "&amp;", "&lt;" and "&gt;". In the
# entities_* fixtures the authors also typed "&lt;"-like text themselves, which X sends as
# "&amp;lt;": decoded once, it is "&lt;" again.

TWEET_TYPED = (
    '@brand Your "fibre & TV" bundle: speed <10 Mb/s, promised >100. '
    "The price page even shows &lt;br&gt; where a line break should be. cc @brandsupport"
)


@pytest.mark.parametrize(
    ("name", "text", "quoted_text"),
    [
        pytest.param("entities_tweet.json", TWEET_TYPED, "", id="tweet"),
        pytest.param(
            "entities_long_tweet.json",
            "@brand Fourth outage & still no technician. Download speed <2 Mb/s for a week, upload >0 only "
            'at night. Your app says &gt;&gt; "all systems normal" &lt;&lt; which I typed exactly as it '
            "shows. I want a refund & a visit, not another script.",
            "",
            id="extended-tweet",
        ),
        pytest.param(
            "entities_quote.json",
            "Promise & reality: 24 hours was 9 days ago. <sigh> https://t.co/Quote00002",
            'Terms & conditions apply: speeds <= 100 Mb/s, "up to" means up to. Questions? DM us & we '
            "will look at your line within 24 hours, promise. Our status page is the place to check "
            "first: it is updated every five minutes. <3",
            id="quoted-tweet",
        ),
        pytest.param(
            "entities_dm.json",
            'Account 88-1234 & the modem shows "<LOS>" in red. I pasted &amp; from your FAQ and it failed.',
            "",
            id="dm",
        ),
        pytest.param(
            "entities_xaa_post_quote.json",
            'Dear @brand, about your "faster & cheaper" plan: my bill went up & my speed went down. The '
            "contract says speed >= 50 Mb/s; the router page says <5. It also prints &lt;null&gt; as my "
            "plan name, which I copied here character for character. Three calls, two chats & one "
            "engineer later, nobody can tell me why. Please fix the speed or put me back on the old plan.",
            "New plan: faster & cheaper, <30 days to switch. Details: https://t.co/Plan000005",
            id="v2-note-tweet-quoting-includes-tweet",
        ),
        pytest.param(
            "entities_xaa_dm.json",
            'Still <nothing> after the reset & the modem light is red. Your bot replied "&lt;template&gt;".',
            "",
            id="v2-dm",
        ),
    ],
)
def test_x_entities_in_text_are_decoded_once(name, text, quoted_text):
    (message,) = parse_fixture(name).messages
    assert message.text == text
    assert message.quoted_text == quoted_text


def test_x_offsets_fit_the_decoded_text():
    # X counts display_text_range and entity indices on the unescaped text.
    tweet = fixture_json("x", "entities_tweet.json")["tweet_create_events"][0]

    (message,) = parse_fixture("entities_tweet.json").messages

    start, end = tweet["display_text_range"]
    assert message.text[start:end] == TWEET_TYPED.removeprefix("@brand ")
    for mention in tweet["entities"]["user_mentions"]:
        first, last = mention["indices"]
        assert message.text[first:last] == "@" + mention["screen_name"]


@pytest.mark.parametrize(
    ("sent", "typed"),
    [
        ("Q&amp;A", "Q&A"),
        ("5 &lt; 6 &gt; 4", "5 < 6 > 4"),
        ("&amp;lt;b&amp;gt;", "&lt;b&gt;"),
        ("&amp;amp;", "&amp;"),
        # Not X's escaping: left as they are, as html.unescape would not.
        (
            "&quot; &#39; &#x3c; &copy; ?id=5&region=eu AT&T",
            "&quot; &#39; &#x3c; &copy; ?id=5&region=eu AT&T",
        ),
    ],
)
def test_text_decode_undoes_exactly_x_escaping(sent, typed):
    assert x.text_decode(sent) == typed


def test_text_without_an_ampersand_is_returned_as_it_is():
    text = "router dead again"
    assert x.text_decode(text) is text


@dataclass(frozen=True)
class Messages:
    """The body carries ``count`` messages; the first is a ``kind`` whose text contains ``text``."""

    count: int
    kind: str
    text: str


@dataclass(frozen=True)
class Ignored:
    """The body parses to no message, for exactly this reason."""

    reason: str


@dataclass(frozen=True)
class Fails:
    """The body is refused with a ParseError containing this."""

    error: str


# Every file of the shared X corpus (origins in its SOURCES.md), and what parsing it gives.
# A file added to the corpus fails the test below until it is classified here.
CORPUS_EXPECTED = {
    # Prose from X's documentation, kept for the CRC and signature rules: not a body.
    "x_webhook_crc_and_signature_spec.txt": Fails("The body is not JSON"),
    "xdocs_aaa_direct_message_events.json": Messages(1, "dm", "Hello World!"),
    "xdocs_aaa_direct_message_indicate_typing_events.json": Ignored("Nothing to ingest: typing indicators."),
    "xdocs_aaa_direct_message_mark_read_events.json": Ignored("Nothing to ingest: read receipts."),
    # The docs' envelopes with "<Tweet Object>" placeholders: not JSON.
    "xdocs_aaa_event_envelope_skeletons.txt": Fails("The body is not JSON"),
    # A long tweet whose author the corpus left as {} (the docs' placeholder): no author, no message.
    "xdocs_aaa_tweet_create_events_longform_extended_tweet.json": Fails(
        "tweet_create_events[0] (1924465506158878979): user.id_str is missing."
    ),
    "xdocs_aaa_tweet_delete_events.json": Ignored("Nothing to ingest: post deletions."),
    "xdocs_aaa_user_event_revoke.json": Ignored("Nothing to ingest: app permission changes."),
    # Answers of the v2 search and lookup endpoints (which we do not call), not webhook bodies.
    "xdocs_v2_conversation_id_full_thread_search.json": Fails("Not an Account Activity event"),
    "xdocs_v2_conversation_id_request_example.json": Fails("Not an Account Activity event"),
    "xdocs_v2_posts_lookup_deleted_or_protected_errors.json": Fails("Not an Account Activity event"),
    "xdocs_v2_tweet_all_fields_with_includes.json": Fails("Not an Account Activity event"),
    "xdocs_xaa_broadcast_start.json": Ignored("broadcast.start events carry no customer message."),
    "xdocs_xaa_chat_received.json": Ignored(
        "chat.received: end-to-end encrypted chat, content not readable."
    ),
    "xdocs_xaa_chat_sent.json": Ignored("chat.sent: end-to-end encrypted chat, content not readable."),
    "xdocs_xaa_dm_received.json": Messages(1, "dm", "hello!"),
    "xdocs_xaa_dm_sent.json": Messages(1, "dm", "Thanks for the update!"),
    # The docs' generic envelope, its payload left empty.
    "xdocs_xaa_event_envelope.json": Fails("post.create: payload.id is missing."),
    "xdocs_xaa_follow_follow.json": Ignored("follow.follow events carry no customer message."),
    "xdocs_xaa_follow_unfollow.json": Ignored("follow.unfollow events carry no customer message."),
    "xdocs_xaa_like_create.json": Ignored("like.create events carry no customer message."),
    "xdocs_xaa_news_new.json": Ignored("news.new events carry no customer message."),
    "xdocs_xaa_oauth_revoke.json": Ignored("oauth.revoke events carry no customer message."),
    "xdocs_xaa_post_create.json": Messages(1, "post", "Hello from the Activity API"),
    "xdocs_xaa_post_delete.json": Ignored("post.delete events carry no customer message."),
    "xdocs_xaa_post_mention_create.json": Messages(1, "post", "hey @ExampleUser"),
    "xdocs_xaa_post_quote_create.json": Messages(1, "post", "Adding some context to this."),
    "xdocs_xaa_post_reply_create.json": Messages(
        1, "post", "@ExampleUser Great post \u2014 thanks for sharing!"
    ),
    "xdocs_xaa_post_repost_create.json": Ignored("post.repost.create events carry no customer message."),
    "xdocs_xaa_profile_update_bio.json": Ignored("profile.update.bio events carry no customer message."),
    "xdocs_xaa_spaces_start.json": Ignored("spaces.start events carry no customer message."),
}


def x_bodies() -> list[Path]:
    folder = CORPUS / "twitter"
    return sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []


@pytest.mark.parametrize("path", x_bodies() or [None], ids=lambda p: p.name if p else "absent")
def test_every_real_x_body_parses_as_classified(path):
    if path is None:
        pytest.skip("the shared corpus is not on this machine")
    expected = CORPUS_EXPECTED.get(path.name)
    if expected is None:
        pytest.fail(f"{path.name} is new in the corpus: classify it in CORPUS_EXPECTED.")
    channel = SimpleNamespace(account_id="", slug="corpus")

    if isinstance(expected, Fails):
        with pytest.raises(ParseError) as error:
            parse_body(path.read_bytes(), channel)
        assert expected.error in str(error.value)
        return
    result = parse_body(path.read_bytes(), channel)
    if isinstance(expected, Ignored):
        assert (result.messages, result.ignored_reason) == ([], expected.reason)
        return
    assert len(result.messages) == expected.count and not result.ignored_reason
    assert result.messages[0].kind == expected.kind and expected.text in result.messages[0].text
    for message in result.messages:
        assert message.external_id and message.author_id
        assert message.sent_at.tzinfo is not None


def test_no_classified_corpus_body_is_missing_from_the_corpus():
    if not x_bodies():
        pytest.skip("the shared corpus is not on this machine")
    assert set(CORPUS_EXPECTED) - {path.name for path in x_bodies()} == set()


# --- signatures -------------------------------------------------------------------------


def test_signature_is_base64_hmac_sha256_with_prefix():
    # Known answer: HMAC-SHA256(key="secret", msg="message"), base64.
    assert x.signature("secret", b"message") == "sha256=i19IcCmVwVmMVz2x4hhmqbgl1KeU0WnXBgoDYFeWNgs="


# --- sending ----------------------------------------------------------------------------


@pytest.fixture
def fake_x():
    """The fake X API, also keeping each request's body as the bytes posted (``bodies``)."""
    with FakeAPI() as api:
        api.bodies = []

        class Handler(api.server.RequestHandlerClass):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api.bodies.append(raw)
                self.rfile = io.BytesIO(raw)
                super().do_POST()

        api.server.RequestHandlerClass = Handler
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


def x_escaped(text: str) -> str:
    """``text`` as X's API sends it back: "&", "<" and ">" as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@pytest.mark.django_db
def test_reply_quoting_an_escaped_tweet_is_posted_as_typed_and_its_echo_matches(
    client, fake_x, sending_channel, django_capture_on_commit_callbacks
):
    # given: Rosa's tweet, escaped by X, through the webhook and the inbox
    body = fixture_bytes("x", "entities_tweet.json")
    with django_capture_on_commit_callbacks(execute=True):
        post_x_webhook(client, sending_channel, body)
    assert bytes(InboundEvent.objects.get().body) == body
    tweet = Message.objects.get()
    assert tweet.text == TWEET_TYPED
    quoted = tweet.text.removeprefix("@brand ").removesuffix(" cc @brandsupport")
    reply = services.message_add(
        case=tweet.case,
        direction="out",
        kind="post",
        text=f"@rosa_d You wrote: {quoted} We are fixing that page.",
        channel=sending_channel,
        identity=tweet.identity,
        is_public=True,
        reply_to=tweet,
        delivery_state="queued",
    )
    fake_x.respond(201, {"data": {"id": "1050700000000000009", "text": x_escaped(reply.text)}})

    # when
    x.send(reply, sending_channel)

    # then: the text went out as the agent wrote it, quotation and all, for X to escape
    (request,) = fake_x.requests
    assert request["json"]["text"] == reply.text
    (raw,) = fake_x.bodies
    assert b"fibre & TV" in raw and b"speed <10" in raw and b"promised >100" in raw
    assert b"shows &lt;br&gt; where" in raw
    assert b"&amp;" not in raw and b"\\u00" not in raw

    # and X's escaped echo of it, outrunning the send task, is matched to the queued reply
    echo = fixture_json("x", "echo_reply.json")
    echo["tweet_create_events"][0].update(
        id_str="1050700000000000009",
        text=x_escaped(reply.text),
        in_reply_to_status_id_str=tweet.external_id,
    )
    with django_capture_on_commit_callbacks(execute=True):
        post_x_webhook(client, sending_channel, json.dumps(echo).encode())
    reply.refresh_from_db()
    assert reply.external_id == "1050700000000000009" and reply.delivery_state == "sent"
    assert Message.objects.count() == 2


@pytest.mark.django_db
def test_dm_with_ampersands_and_angle_brackets_is_posted_as_plain_text(fake_x, sending_channel, conversation):
    fake_x.respond(201, {"data": {"dm_conversation_id": "777-5150", "dm_event_id": "1582838223000000001"}})
    text = "Q&A: type <reset> & wait; &lt; is how a web page writes <"

    x.send(outbound(conversation, kind="dm", text=text), sending_channel)

    (request,) = fake_x.requests
    assert request["json"] == {"text": text}
    (raw,) = fake_x.bodies
    assert b"Q&A: type <reset> & wait; &lt; is how a web page writes <" in raw
