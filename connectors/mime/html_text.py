"""HTML bodies: ``sanitize_html`` keeps what is safe to show an agent (a small tag set, no
scripts, styles, handlers or remote images), ``html_to_text`` reads an HTML body as plain
text with blockquotes as ``>`` lines.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3

# --- HTML -----------------------------------------------------------------------------

SAFE_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup",
    "dd", "del", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "ins", "kbd", "li", "ol", "p", "pre", "q", "s", "small", "span", "strike", "strong", "sub",
    "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul",
}  # fmt: skip
SAFE_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "ol": {"start"},
}
# Kept so the agent screen can fold quoted history.
SAFE_CLASSES = {"div": {"gmail_quote"}, "blockquote": {"gmail_quote"}}


def _keep_attribute(element: str, attribute: str, value: str) -> str | None:
    # Images only from the mail itself (cid:): remote images are tracking pixels.
    if element == "img" and attribute == "src" and not value.strip().lower().startswith("cid:"):
        return None
    return value


def sanitize_html(html: str) -> str:
    """HTML safe to show an agent: a small tag set, no scripts, styles, handlers or remote images."""
    if not html.strip():
        return ""
    return nh3.clean(
        html,
        tags=SAFE_TAGS,
        clean_content_tags={"script", "style", "title", "head", "template", "noscript", "iframe", "object"},
        attributes=SAFE_ATTRIBUTES,
        attribute_filter=_keep_attribute,
        allowed_classes=SAFE_CLASSES,
        url_schemes={"http", "https", "mailto", "tel", "cid"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    ).strip()


_BLOCK_TAGS = {
    "address", "article", "aside", "blockquote", "center", "dd", "div", "dl", "dt", "footer",
    "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "ol", "p", "pre", "section",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}  # fmt: skip
_SKIP_TAGS = {"script", "style", "head", "title", "template", "noscript", "xml"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.quote_depth = 0
        self.line_depth = 0
        self.skip = 0
        self.pre = 0

    def _newline(self) -> None:
        text = "".join(self.current)
        if not self.pre:
            text = re.sub(r"[ \t\r\n\f\xa0]+", " ", text).strip()
        prefix = "> " * self.line_depth
        self.lines.append((prefix + text).rstrip())
        self.current = []
        self.line_depth = self.quote_depth

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag == "br":
            self._newline()
        elif tag in _BLOCK_TAGS:
            if "".join(self.current).strip():
                self._newline()
            if tag == "blockquote":
                self.quote_depth += 1
                self.line_depth = self.quote_depth
            elif tag == "pre":
                self.pre += 1
            elif tag == "li":
                self.current.append("- ")
            elif tag in {"td", "th"}:
                self.current.append(" ")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK_TAGS:
            if "".join(self.current).strip() or tag in {"p", "div", "tr", "h1", "h2", "h3"}:
                self._newline()
            if tag == "blockquote":
                self.quote_depth = max(0, self.quote_depth - 1)
                self.line_depth = self.quote_depth
            elif tag == "pre":
                self.pre = max(0, self.pre - 1)

    def handle_data(self, data):
        if self.skip:
            return
        if not "".join(self.current).strip():
            self.line_depth = self.quote_depth
        if self.pre:
            for i, chunk in enumerate(data.split("\n")):
                if i:
                    self._newline()
                self.current.append(chunk)
        else:
            self.current.append(data)

    def text(self) -> str:
        self._newline()
        text = "\n".join(self.lines)
        text = re.sub(r"\n(?:[ >]*\n){2,}", "\n\n", text)
        return text.strip("\n")


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML body; blockquotes become ``>`` lines."""
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except Exception:  # noqa: BLE001 - html.parser is lenient; this is belt and braces
        return re.sub(r"<[^>]*>", " ", html)
    return extractor.text().replace("\xa0", " ")
