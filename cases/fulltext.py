"""Full-text search of message texts, case subjects and customer names, and safe snippets.

One text-search configuration serves every desk search (the queue's ``q``, the search box):
``simple``, which lower-cases words and neither stems nor drops stop words. Customers write
in several languages, often in one post, with handles, booking codes and product names that
no stemmer knows: English stemming conflates words a searcher meant apart (``university`` and
``universe``) and drops words that carry meaning in other languages (``no``, ``me``, ``a``,
``on``). ``simple`` finds the words that were typed, in any language; the price is a larger
index and more matches for very common words, measured in ``bench/search.py``.

The GIN indexes are expression indexes over exactly what :func:`vector` renders
(``to_tsvector('simple'::regconfig, COALESCE(<column>, ''))``): created by migrations
(``cases/0011``, ``customers/0004``) on PostgreSQL only. The SQLite default matches with LIKE.
"""

from __future__ import annotations

import re

from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchVector
from django.db.models import F, Q, Value
from django.db.models.functions import Left, Replace
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

SEARCH_CONFIG = "simple"

# ts_headline marks matches with these (private-use characters, removed from the text first),
# and :func:`snippet_html` turns them into <mark> after escaping everything else.
MARK_START = "\ue000"
MARK_END = "\ue001"
# ts_headline re-reads the text it highlights: only this much of a long e-mail is read.
SNIPPET_SOURCE_CHARS = 4000
# The snippet the SQLite fallback cuts around the first match (characters either side).
PLAIN_CONTEXT = 80

_MARKED = re.compile(f"{MARK_START}([^{MARK_START}{MARK_END}]*){MARK_END}")
_TERMS = re.compile(r'"([^"]+)"|(\S+)')
_WORD = re.compile(r"\w+")


def vector(column: str) -> SearchVector:
    """The indexed expression for ``column``."""
    return SearchVector(column, config=SEARCH_CONFIG)


def websearch(text: str) -> SearchQuery:
    """What a searcher typed, read as web-search syntax: quoted phrases, ``or``, ``-word``."""
    return SearchQuery(text, config=SEARCH_CONFIG, search_type="websearch")


def prefix_query(text: str) -> SearchQuery | None:
    """Every word of ``text`` as a prefix of a word (``dan rey`` finds "Dana Reyes").

    The query is built from word characters only, so nothing typed is read as tsquery syntax.
    """
    words = _WORD.findall(text.lower())
    if not words:
        return None
    return SearchQuery(" & ".join(f"{word}:*" for word in words), config=SEARCH_CONFIG, search_type="raw")


def headline(column: str, query: SearchQuery) -> SearchHeadline:
    """Up to 35 words of ``column`` around what ``query`` matched, matches between the markers
    (a short post whole)."""
    source = Left(
        Replace(Replace(F(column), Value(MARK_START), Value("")), Value(MARK_END), Value("")),
        SNIPPET_SOURCE_CHARS,
    )
    return SearchHeadline(
        source,
        query,
        config=SEARCH_CONFIG,
        start_sel=MARK_START,
        stop_sel=MARK_END,
        max_words=35,
        min_words=15,
    )


def snippet_html(marked: str) -> SafeString:
    """A headline as HTML: everything escaped, then the marked matches wrapped in <mark>."""
    escaped = escape(marked)  # escape() leaves the private-use markers alone
    highlighted = _MARKED.sub(r"<mark>\1</mark>", escaped)
    return mark_safe(highlighted.replace(MARK_START, "").replace(MARK_END, ""))  # noqa: S308


# --- The SQLite fallback ---------------------------------------------------------------------


def plain_terms(text: str) -> tuple[list[str], list[str]]:
    """The phrases and words a search requires, and the ones it excludes (``-word``).

    A small reading of web-search syntax for the LIKE fallback: ``or`` is taken as a word
    separator (every other term is still required).
    """
    required, excluded = [], []
    for phrase, word in _TERMS.findall(text):
        term = phrase or word
        if word.lower() == "or":
            continue
        if word.startswith("-") and len(word) > 1:
            excluded.append(word[1:])
        elif term.strip('"'):
            required.append(term.strip('"'))
    return required, excluded


def plain_match(column: str, text: str) -> Q:
    """``column`` contains every required term and none of the excluded ones (case-insensitive)."""
    required, excluded = plain_terms(text)
    if not required:
        return Q(pk__in=[])
    match = Q()
    for term in required:
        match &= Q(**{f"{column}__icontains": term})
    for term in excluded:
        match &= ~Q(**{f"{column}__icontains": term})
    return match


def plain_snippet(text: str, search: str) -> SafeString:
    """The part of ``text`` around the first term of ``search`` it contains, terms marked, all escaped."""
    required, _ = plain_terms(search)
    lowered = text.lower()
    hits = [(lowered.find(term.lower()), term) for term in required]
    hits = [(at, term) for at, term in hits if at >= 0]
    if not hits:
        return snippet_html(text[: PLAIN_CONTEXT * 2])
    first = min(at for at, _ in hits)
    start, end = max(0, first - PLAIN_CONTEXT), first + PLAIN_CONTEXT
    window = text[start:end].replace(MARK_START, "").replace(MARK_END, "")
    pattern = re.compile("|".join(re.escape(term) for _, term in hits), re.IGNORECASE)
    marked = pattern.sub(lambda m: f"{MARK_START}{m.group(0)}{MARK_END}", window)
    prefix = "… " if start else ""
    suffix = " …" if end < len(text) else ""
    return snippet_html(f"{prefix}{marked}{suffix}")
