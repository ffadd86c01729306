"""The new part of a reply, without the quoted history and the signature.

Plain text goes through ``mail-parser-reply`` with every language it knows (its
multilingual headers: "On … wrote:", "Am … schrieb", "Le … a écrit", 在…写道 …); an
HTML-only mail is first cut with ``quotequail`` (Gmail, Outlook and Apple quote blocks),
then its visible part goes the same way. When extraction leaves nothing, the full text is
kept: a message is never stored empty because a quote marker was misread.
"""

from __future__ import annotations

import quotequail
from mailparser_reply import EmailReplyParser
from mailparser_reply.parser import EmailMessage

from connectors.email.html import html_to_text

LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "sv", "da", "pl", "cs", "ja", "ko", "zh"]
_PARSER = EmailReplyParser(languages=LANGUAGES)


def _compiled_patterns() -> dict[str, object]:
    """The library's three patterns for our languages, built once: it assembles them
    from its per-language tables again for every mail, which was half of its cost."""
    probe = EmailMessage(text="", languages=list(_PARSER.languages))
    return {"_header_regex": probe.HEADER_REGEX, "_disclaimers_regex": probe.DISCLAIMERS_REGEX,
            "_signature_regex": probe.SIGNATURE_REGEX}


_PATTERNS = _compiled_patterns()
#: Bodies longer than this are not searched for quotes (the regexes are linear, but long).
MAX_SCAN = 200_000


def new_text(text: str | None, html: str | None) -> str | None:
    """The new part of the reply (plain text), or the full text when none can be told."""
    if text and text.strip():
        return _from_text(text)
    if html and html.strip():
        visible = html
        if len(html) <= MAX_SCAN:
            try:
                parts = quotequail.quote_html(html)
                shown = "".join(part for keep, part in parts if keep)
                visible = shown or html
            except Exception:  # noqa: BLE001 - quotequail on broken markup
                visible = html
        return _from_text(html_to_text(visible)) or html_to_text(html) or None
    return None


def _from_text(text: str) -> str:
    full = text.strip()
    if len(full) > MAX_SCAN:
        return full
    try:
        # What ``_PARSER.parse_reply(text=full)`` does, with the patterns built once.
        reply = EmailMessage(text=full, languages=list(_PARSER.languages), **_PATTERNS).read().latest_reply
    except Exception:  # noqa: BLE001 - the library's regexes on odd input
        return full
    reply = _without_quoted_tail((reply or "").strip())
    return reply or full


def _without_quoted_tail(text: str) -> str:
    """``text`` without the ``>``-quoted lines that end it (quoted without a header line)."""
    lines = text.split("\n")
    end = len(lines)
    while end and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith(">")):
        end -= 1
    if end == len(lines) or not any(line.lstrip().startswith(">") for line in lines[end:]):
        return text
    return "\n".join(lines[:end]).rstrip()
