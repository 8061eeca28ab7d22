"""Phrase extraction: the words triage matches on, less stop words, in runs of 1-3."""

from cases.topics import phrases


def test_runs_break_at_stop_words_and_punctuation():
    assert phrases.tokens("My bag was lost at Heathrow. Lost bag desk closed!") == [
        ["bag"], ["lost"], ["heathrow"], ["lost", "bag", "desk", "closed"],
    ]  # fmt: skip


def test_links_handles_numbers_and_references_are_left_out():
    text = "@CaselineAir flight BA123 delayed 3 hours https://t.co/abc #fail me@example.com &amp; gate"
    assert phrases.tokens(text) == [["flight"], ["delayed"], ["hours"], ["fail"], ["gate"]]


def test_phrases_are_unigrams_bigrams_and_trigrams_of_a_run_each_once():
    found = phrases.phrases("Refund request refund request, broken seat belt")
    assert found == {
        "refund", "request", "refund request", "request refund", "refund request refund",
        "request refund request", "broken", "seat", "belt", "broken seat", "seat belt", "broken seat belt",
    }  # fmt: skip


def test_case_and_curly_apostrophes_fold_and_contractions_are_stop_words():
    assert phrases.phrases("WiFi DIDN’T work") == {"wifi", "work"}
    assert phrases.phrases("the crew's attitude") == {"crew's", "attitude", "crew's attitude"}


def test_empty_and_stop_word_only_text_has_no_phrases():
    assert phrases.phrases("") == set()
    assert phrases.phrases(None) == set()
    assert phrases.phrases("Hi, can you please help me?") == set()


def test_subject_and_text_do_not_run_together():
    text = phrases.message_text("Missing bag", "Suitcase never arrived")
    assert "bag suitcase" not in phrases.phrases(text)
    assert {"missing bag", "suitcase", "arrived"} <= phrases.phrases(text)


def test_long_messages_are_read_up_to_the_limit():
    text = "printer " * 10 + "x" * phrases.MAX_CHARS + " scanner"
    assert "scanner" not in phrases.phrases(text)
    assert "printer" in phrases.phrases(text)


def test_top_phrases_prefers_the_most_shared_then_the_longest():
    texts = ["lost bag at the gate", "my lost bag again", "lost bag, nobody answers"]
    assert phrases.top_phrases(texts, limit=2) == ["lost bag", "bag"]


def test_a_hyphenated_word_stays_whole_and_a_dash_breaks_the_run():
    assert phrases.tokens("Wi-Fi slow - check-in kiosk broken -- again") == [
        ["wi-fi", "slow"], ["check-in", "kiosk", "broken"],
    ]  # fmt: skip
