"""Content-Security-Policy: every page sends one that allows no inline or evaluated script,
and nothing the pages are made of needs more (no inline script, handler or style)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.urls import reverse

from tests.desk.conftest import open_case

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>", re.IGNORECASE)
HANDLER_ATTRIBUTE = re.compile(r"<[a-z][^>]*\s(on[a-z]+|hx-on[:\-a-z]*)\s*=", re.IGNORECASE)
SCRIPT_URL = re.compile(r"""(href|src|action|formaction)\s*=\s*["']?\s*javascript:""", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"<[a-z][^>]*\sstyle\s*=", re.IGNORECASE)


def policy(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


class Inline(HTMLParser):
    """Collects what a CSP without 'unsafe-inline' would block in a rendered page."""

    def __init__(self):
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "script" and not names.get("src"):
            self.problems.append("inline <script>")
        for name, value in attrs:
            if name.startswith("on") or name.startswith("hx-on"):
                self.problems.append(f"<{tag} {name}=...>")
            if name == "style":
                self.problems.append(f"<{tag} style=...>")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.problems.append(f"<{tag} {name}=javascript:...>")


def inline_problems(html: str) -> list[str]:
    parser = Inline()
    parser.feed(html)
    return parser.problems


@pytest.fixture
def pages(client, agent, channel):
    """The login page (signed out), then the queue and a case page (signed in)."""
    signed_out = {"login": client.get(reverse("account_login"))}
    case = open_case(channel=channel, text="Hello <b>there</b>", assignee=agent)
    client.force_login(agent)
    return signed_out | {
        "queue": client.get(reverse("desk:queue")),
        "case": client.get(reverse("desk:case", args=[case.reference])),
    }


def test_every_page_sends_a_policy_without_inline_or_evaluated_script(pages):
    for name, response in pages.items():
        assert response.status_code == 200, name
        directives = policy(response)
        assert directives, f"{name}: no Content-Security-Policy header"
        assert directives["default-src"] == ["'self'"], name
        script = directives.get("script-src", directives["default-src"])
        assert "'self'" in script, name
        for loose in ("'unsafe-inline'", "'unsafe-eval'", "data:", "*", "http:", "https:"):
            assert loose not in script, f"{name}: script-src allows {loose}"
        assert "'unsafe-inline'" not in directives.get("style-src", []), name
        assert directives.get("frame-ancestors") == ["'none'"], name
        assert directives.get("form-action") == ["'self'"], name
        assert directives.get("object-src") == ["'none'"], name
        assert directives.get("base-uri") == ["'none'"], name


def test_rendered_pages_need_nothing_the_policy_blocks(pages):
    for name, response in pages.items():
        assert inline_problems(response.content.decode()) == [], name


def test_no_template_has_inline_script_handlers_script_urls_or_styles():
    files = sorted(TEMPLATES.rglob("*.html"))
    assert files, "no templates found"
    found = []
    for path in files:
        text = path.read_text()
        for pattern, what in (
            (INLINE_SCRIPT, "inline <script>"),
            (HANDLER_ATTRIBUTE, "event handler attribute"),
            (SCRIPT_URL, "javascript: URL"),
            (STYLE_ATTRIBUTE, "style attribute"),
        ):
            found += [
                f"{path.relative_to(TEMPLATES)}: {what}: {m.group(0)[:80]}" for m in pattern.finditer(text)
            ]
    assert found == []


def test_htmx_is_configured_not_to_evaluate_strings(pages):
    body = pages["queue"].content.decode()
    meta = re.search(r'<meta name="htmx-config" content=\'([^\']*)\'', body)
    assert meta, "htmx-config meta is missing"
    assert '"allowEval": false' in meta.group(1)
    assert '"allowScriptTags": false' in meta.group(1)


def test_the_inline_scanner_finds_what_it_looks_for():
    # The checks above must be able to fail.
    assert inline_problems('<p onclick="x()">a</p><script>1</script><a href=" JavaScript:x">b</a>') == [
        "<p onclick=...>",
        "inline <script>",
        "<a href=javascript:...>",
    ]
    assert INLINE_SCRIPT.search("<script>alert(1)</script>")
    assert not INLINE_SCRIPT.search('<script src="/static/x.js" defer></script>')
    assert HANDLER_ATTRIBUTE.search('<img src="x" onerror="alert(1)">')
    assert HANDLER_ATTRIBUTE.search('<button hx-on:click="x()">')
