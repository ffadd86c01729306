"""Reading mail headers without ever raising.

The standard library's modern header parser raises on headers found in real mail
(Exchange's ``Message-ID: <[…@microsoft.com]>``, a newline inside an encoded ``From``):
every read here falls back to the raw value and the older, forgiving helpers.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from connectors.email.charsets import decode_text

_ID = re.compile(r"<([^<>\s]+)>")
_WS = re.compile(r"\s+")
#: Header folding: the line break goes, the white space after it stays (RFC 5322 2.2.3).
_FOLD = re.compile(r"\r?\n")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_KEPT = re.compile(r"\x01(\d+)\x01")
#: Longest message id kept as is; longer ones are hashed (ids are the dedup key).
MAX_ID = 900


def raw_header(msg: Message, name: str) -> str | None:
    """The header's stored value, undecoded (first occurrence), or None."""
    wanted = name.lower()
    try:
        items = msg.raw_items()
    except Exception:  # noqa: BLE001 - a broken header list reads as none
        return None
    for key, value in items:
        if str(key).lower() == wanted:
            return value if isinstance(value, str) else str(value)
    return None


def header(msg: Message, name: str) -> str | None:
    """The header decoded (RFC 2047, 8-bit bytes), one line, or None when absent."""
    raw = raw_header(msg, name)
    if raw is None:
        return None
    if "=?" in raw or any("\udc80" <= c <= "\udcff" for c in raw):
        # Encoded words, or 8-bit bytes: decoded here through the same charset supersets
        # as bodies (a GB2312-labelled subject often holds GBK characters).
        value = decode_raw(raw)
    else:
        value = raw
    return _FOLD.sub("", value).strip()


def decode_raw(raw: str) -> str:
    """Decode a raw header value: encoded words, and 8-bit bytes in any charset."""
    raw = _FOLD.sub("", raw)
    try:
        parts = decode_header(raw)
    except Exception:  # noqa: BLE001 - fall through to a byte-level decode
        parts = None
    if parts and any(charset for _, charset in parts):
        try:
            return "".join(
                decode_text(chunk if isinstance(chunk, bytes) else chunk.encode("utf-8", "surrogateescape"),
                            charset)[0]
                for chunk, charset in parts)
        except Exception:  # noqa: BLE001
            try:
                return str(make_header(parts))
            except Exception:  # noqa: BLE001
                pass
    data = raw.encode("utf-8", "surrogateescape")
    return decode_text(data, None)[0]


def addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """``(display name, lower-cased address)`` pairs of an address header (the first
    occurrence that holds one: some mail repeats ``From`` with junk first)."""
    try:
        values = msg.get_all(name) or []
    except Exception:  # noqa: BLE001 - the modern parser raised: read the raw values
        values = []
    for value in values:
        try:
            found = [(a.display_name or "", a.addr_spec.lower()) for a in getattr(value, "addresses", ())
                     if a.addr_spec and "@" in a.addr_spec and not any(c in a.addr_spec for c in "\r\n ")]
        except Exception:  # noqa: BLE001
            found = []
        if found:
            return [(_CONTROL.sub(" ", _text(d)).strip(), a) for d, a in found]
    for raw in _raw_all(msg, name):
        found = _raw_addresses(raw)
        if found:
            return found
    return []


def _text(value: str) -> str:
    """A decoded header text, its undecoded 8-bit bytes read in whatever charset fits."""
    if any("\udc80" <= c <= "\udcff" for c in value):
        return decode_raw(value)
    return value


def _raw_all(msg: Message, name: str) -> list[str]:
    wanted = name.lower()
    try:
        return [v if isinstance(v, str) else str(v) for k, v in msg.raw_items() if str(k).lower() == wanted]
    except Exception:  # noqa: BLE001
        return []


def _raw_addresses(raw: str) -> list[tuple[str, str]]:
    """Addresses of a raw header value, for when the structured parser failed."""
    # Split the raw value first and decode each display name after: a decoded name may
    # hold the commas and angle brackets that separate addresses.
    # Encoded words may hold commas (``=?iso-8859-1?Q?B=FCrling,=20Andreas?=``): they are
    # set aside while the value is split.
    words: list[str] = []

    def keep(match: re.Match[str]) -> str:
        words.append(match.group(0))
        return f"\x01{len(words) - 1}\x01"

    try:
        pairs = getaddresses([_ENCODED_WORD.sub(keep, _FOLD.sub("", raw))])
    except Exception:  # noqa: BLE001
        return []
    found = []
    for display, address in pairs:
        display = _KEPT.sub(lambda m: words[int(m.group(1))], display)
        address = address.strip().strip("<>").lower()
        if "@" not in address or any("\udc80" <= c <= "\udcff" for c in address):
            continue
        if "=?" in display or any("\udc80" <= c <= "\udcff" for c in display):
            display = decode_raw(display)
        display = _CONTROL.sub(" ", display).strip().strip('"').strip()
        found.append((display, address))
    return found


def message_ids(msg: Message, name: str) -> list[str]:
    """The normalized message ids listed in a header (``In-Reply-To``, ``References``)."""
    raw = raw_header(msg, name)
    if not raw:
        return []
    found = _ID.findall(raw)
    if not found:
        found = [t for t in _WS.split(raw) if "@" in t]
    ids = []
    for value in found:
        normal = normalize_id(value)
        if normal and normal not in ids:
            ids.append(normal)
    return ids


def normalize_id(value: str | None) -> str | None:
    """A message id without ``<>`` and spaces, domain lower-cased; hashed when huge."""
    if not value:
        return None
    text = _WS.sub("", value).strip("<>")
    if not text:
        return None
    local, at, domain = text.rpartition("@")
    if at:
        text = f"{local}@{domain.lower()}"
    if len(text) > MAX_ID:
        text = "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
    return text


def date(msg: Message) -> datetime | None:
    """The ``Date`` header as an aware UTC time, or None when missing or unreadable."""
    raw = raw_header(msg, "Date")
    if not raw:
        return None
    try:
        value = parsedate_to_datetime(_WS.sub(" ", raw).strip())
    except Exception:  # noqa: BLE001
        return None
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
