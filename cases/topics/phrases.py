"""Phrases from what a customer wrote: the words triage matches on, less the stop words.

Triage matches its keywords as whole words, in any case (``cases.triage.match_intents``: runs
of word characters bounded by non-word characters). The same words are the tokens here:
lower-cased runs of letters (an apostrophe or a hyphen inside a word kept: "didn't",
"check-in"; a hashtag's word kept without its sign), with links, @handles, e-mail
addresses and anything holding a digit (flight numbers, booking references, amounts) left
out, as they name one customer's case rather than a topic.

A phrase is one, two or three tokens in a row, none a stop word, inside one clause:
punctuation and stop words both break a run, so "my bag was lost at Heathrow" gives
"bag", "lost", "heathrow" but "lost bag" only where those words stand side by side. Each
message counts once per phrase, however often it repeats it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..urgent import STOP_WORDS as ALERT_STOP_WORDS

MAX_WORDS = 3
# Long e-mails: the first part says what they are about; the rest is history and signatures.
MAX_CHARS = 2000
# A phrase longer than this is not a topic (and would not fit the table's column).
MAX_PHRASE_CHARS = 120

STOP_WORDS = ALERT_STOP_WORDS | frozenset(
    """
    a about above after again against all am an and any are aren't as at be because been before
    being below between both but by can can't cannot could couldn't did didn't do does doesn't
    doing don't down during each few for from further had hadn't has hasn't have haven't having he
    he'd he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm i've if
    in into is isn't it it's its itself let's me more most mustn't my myself no nor not of off on
    once only or other ought our ours ourselves out over own same shan't she she'd she'll she's
    should shouldn't so some such than that that's the their theirs them themselves then there
    there's these they they'd they'll they're they've this those through to too under until up
    very was wasn't we we'd we'll we're we've were weren't what what's when when's where where's
    which while who who's whom why why's with won't would wouldn't you you'd you'll you're you've
    your yours yourself yourselves
    im ive id dont cant wont didnt doesnt isnt wasnt arent couldnt wouldnt shouldnt youre thats
    u ur pls plz thx ty hi hello hey dear regards kind best cheers ok okay yes yeah lol omg
    get got getting go going gone one two also just now even still really much many well way
    back us will may might must shall say said tell told ask asked let make made see seen
    would've could've should've re fw fwd via
    """.split()  # noqa: SIM905 - a word list reads best as words
)

# Links, handles and addresses first: their pieces would otherwise look like words.
_NOISE = re.compile(r"https?://\S+|www\.\S+|\S+@\S+|@\w+|&\w+;", re.IGNORECASE)
# A hyphen inside a word keeps it whole ("check-in", "wi-fi"); a dash between words breaks the run.
_CLAUSES = re.compile(r"(?:[.!?;:,()\[\]{}\"“”|/\\\n\r\t…–—]|\s-+|-+\s|-{2,})+")
_TOKEN = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_DIGIT = re.compile(r"\d")


def tokens(text: str) -> list[list[str]]:
    """The runs of topic words in ``text``, one list per run (see the module docstring)."""
    text = _NOISE.sub(" . ", (text or "")[:MAX_CHARS])
    runs: list[list[str]] = []
    for clause in _CLAUSES.split(text):
        run: list[str] = []
        for match in _TOKEN.finditer(clause):
            word = match.group().lower().replace("’", "'")
            if len(word) < 2 or _DIGIT.search(word) or word in STOP_WORDS:
                if run:
                    runs.append(run)
                run = []
                continue
            run.append(word)
        if run:
            runs.append(run)
    return runs


def phrases(text: str, *, max_words: int = MAX_WORDS) -> set[str]:
    """Every phrase of one to ``max_words`` topic words in ``text``, each once."""
    found: set[str] = set()
    for run in tokens(text):
        for size in range(1, max_words + 1):
            for start in range(len(run) - size + 1):
                phrase = " ".join(run[start : start + size])
                if len(phrase) <= MAX_PHRASE_CHARS:
                    found.add(phrase)
    return found


def message_text(subject: str, text: str) -> str:
    """What the customer wrote, as triage reads it: the subject, then the text."""
    return " . ".join(part for part in (subject, text) if part)


def top_phrases(texts: Iterable[str], *, limit: int = 1) -> list[str]:
    """The phrases most of ``texts`` share, longest first among equals (a theme's name)."""
    counts: dict[str, int] = {}
    for text in texts:
        for phrase in phrases(text):
            counts[phrase] = counts.get(phrase, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], -item[0].count(" "), item[0]))
    return [phrase for phrase, _n in ranked[:limit]]
