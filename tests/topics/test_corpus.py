"""The topics job and page over a real corpus of customer tweets, from ``../shared/corpus``.

Which files are customer tweets is what ``SOURCES.md`` says: every listed file whose
description names "customer tweets" (or customer-support tweets). CSV files need a ``text``
column (an ``inbound`` column, as the Customer Support on Twitter corpus has, keeps the
customers' tweets only); JSON and JSON-lines files hold tweet objects (``text`` or
``full_text``, also inside ``data`` or ``tweet_create_events``). The test is skipped when the
corpus, or any such file in it, is absent.
"""

import csv
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from cases.topics.services import topics_refresh
from tests.corpus import CORPUS

from .conftest import NOW, THIS_WEEK, oracle, table, write

LIMIT = 600
_CUSTOMER_TWEETS = re.compile(r"customer[- ](?:support |care |service )?tweets", re.I)


def customer_tweet_files(corpus: Path) -> list[Path]:
    sources = corpus / "SOURCES.md"
    if not sources.exists():
        return []
    found = []
    for line in sources.read_text(encoding="utf-8").splitlines():
        match = re.match(r"- `(corpus/[^`]+)`", line)
        if match and _CUSTOMER_TWEETS.search(line):
            path = corpus.parent / match.group(1)
            if path.is_file():
                found.append(path)
    return found


def _tweets_in(value) -> list[str]:
    if isinstance(value, list):
        return [text for item in value for text in _tweets_in(item)]
    if isinstance(value, dict):
        text = value.get("full_text") or value.get("text")
        if isinstance(text, str):
            return [text]
        return [t for key in ("data", "tweet_create_events", "tweets") for t in _tweets_in(value.get(key))]
    return []


def customer_tweets(paths: list[Path], limit: int = LIMIT) -> list[str]:
    texts: list[str] = []
    for path in paths:
        if path.suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as handle:
                for row in csv.DictReader(handle):
                    if row.get("inbound", "True").strip().lower() in ("true", "1") and row.get("text"):
                        texts.append(row["text"])
                    if len(texts) >= limit:
                        return texts
        elif path.suffix == ".jsonl":
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    texts += _tweets_in(json.loads(line))
        elif path.suffix == ".json":
            texts += _tweets_in(json.loads(path.read_text(encoding="utf-8")))
    return texts[:limit]


@pytest.fixture
def tweets():
    paths = customer_tweet_files(CORPUS)
    if not paths:
        pytest.skip(f"no customer tweets listed in {CORPUS / 'SOURCES.md'} (or the corpus is absent)")
    texts = customer_tweets(paths)
    if len(texts) < 20:
        pytest.skip(f"only {len(texts)} customer tweets in {', '.join(p.name for p in paths)}")
    return texts


def test_real_customer_tweets_give_counts_that_match_and_a_page_of_real_phrases(
    admin_client, channel, tweets
):
    # given the tweets written to us over two weeks, half before this week
    half = len(tweets) // 2
    for i, text in enumerate(tweets):
        at = NOW - timedelta(days=8 if i < half else 1, minutes=i)
        write(channel=channel, text=text, at=at)

    # when the job counts them
    result = topics_refresh(now=NOW + timedelta(hours=1), settle=timedelta(0))

    # then every tweet was read once, and the table agrees with the messages
    assert result.messages == len(tweets)
    assert table() == oracle()
    # and the page lists real phrases: no handles, links, numbers or stop words
    response = admin_client.get("/desk/topics/", {"week": THIS_WEEK.isoformat(), "weeks": "2"})
    assert response.status_code == 200
    shown = re.findall(r'hx-push-url="false">([^<]+)</a>', response.content.decode())
    assert len(shown) >= 10
    for phrase in shown:
        assert not re.search(r"[@#/\d]|http", phrase), phrase
        assert phrase.split()[0] not in {"the", "to", "and", "my", "i", "you", "is"}, phrase


def test_the_corpus_reader_finds_tweets_in_the_shapes_it_knows(tmp_path):
    # the reader itself runs whether or not the shared corpus is there
    (tmp_path / "corpus" / "twitter").mkdir(parents=True)
    (tmp_path / "corpus" / "twitter" / "twcs.csv").write_text(
        "tweet_id,author_id,inbound,created_at,text\n1,sprintcare,False,x,We can help\n2,115712,True,x,@sprintcare my phone is dead\n",
        encoding="utf-8",
    )
    (tmp_path / "corpus" / "twitter" / "events.json").write_text(
        json.dumps({"tweet_create_events": [{"text": "@brand app down"}], "data": {"full_text": "long one"}}),
        encoding="utf-8",
    )
    (tmp_path / "corpus" / "SOURCES.md").write_text(
        "- `corpus/twitter/twcs.csv` | somewhere | CC | customer support tweets and replies | fetch\n"
        "- `corpus/twitter/events.json` | somewhere | none | customer tweets to a brand | fetch\n"
        "- `corpus/twitter/other.json` | somewhere | none | customer tweets, missing file | fetch\n"
        "- `corpus/email/x.eml` | somewhere | none | an e-mail | fetch\n",
        encoding="utf-8",
    )
    paths = customer_tweet_files(tmp_path / "corpus")
    assert [p.name for p in paths] == ["twcs.csv", "events.json"]
    assert customer_tweets(paths) == ["@sprintcare my phone is dead", "long one", "@brand app down"]
