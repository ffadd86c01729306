"""HTML mail bodies: sanitized for display (``nh3``), and turned into plain text."""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

import nh3

#: ``cid:`` keeps inline images pointing at their parts (see ``metadata.inline_images``).
_URL_SCHEMES = {"http", "https", "mailto", "tel", "cid"}
_BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
           "table", "ul", "ol", "pre", "hr", "section", "article", "header", "footer"}
_SKIP = {"script", "style", "head", "title", "template"}
_BLANK_LINES = re.compile(r"\n[ \t\u00a0]*(?:\n[ \t\u00a0]*){2,}")
_SPACES = re.compile(r"[ \t\u00a0\r\f\v]+")


def sanitize(html: str) -> str:
    """HTML safe to show to agents: no scripts, handlers, forms or foreign schemes."""
    return nh3.clean(html, url_schemes=_URL_SCHEMES, link_rel="noopener noreferrer nofollow")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCKS and tag != "br":
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(_SPACES.sub(" ", data))


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML body (block elements become line breaks)."""
    parser = _Text()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - broken markup: strip tags crudely
        return unescape(re.sub(r"<[^>]*>", " ", html)).strip()
    text = "".join(parser.parts)
    lines = [line.strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
