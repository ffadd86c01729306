"""A raw mail (bytes) -> :class:`InboundMessage`, defensively.

* Parsed with the forgiving ``compat32`` policy (``policy.default`` raises on some real
  headers and costs several times more); every header is decoded by
  :mod:`connectors.email.headers` (RFC 2047 encoded words, RFC 2231 parameters, 8-bit
  bytes in any charset), which never raises.
* Bodies: the first inline ``text/plain`` and ``text/html`` outside attachments and
  forwarded mail, through nested ``mixed`` / ``alternative`` / ``related``; charsets as in
  :mod:`connectors.email.charsets`. HTML is sanitized; a plain text is derived from it
  when the mail has none. ``content`` is the new part of the reply
  (:mod:`connectors.email.reply`).
* Attachments: every other leaf part, ``winmail.dat`` and forwarded ``message/rfc822``
  included; inline ``cid:`` images are listed in ``metadata.inline_images``. Parts over
  ``max_part_bytes`` are dropped and listed in ``metadata.dropped_parts`` with a note in
  the text. The raw mail itself is kept as the attachment ``original.eml``.
* Threading: see :mod:`connectors.email.threading`.
* Machine mail (auto-replies, bounces, complaints, lists) is ``automatic=True`` with its
  kind in ``metadata.automatic``; bounces and complaints name the original's Message-ID
  in ``in_reply_to`` so they land beside the mail they are about.

Only a mail from which no sender, no id and no body can be had raises
:class:`MailParseError`; the caller quarantines it.
"""

from __future__ import annotations

import email
import hashlib
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from typing import Any

from connectors.base import InboundAttachment, InboundMessage, SenderIdentity
from connectors.email import headers as h
from connectors.email.charsets import decode_text
from connectors.email.html import html_to_text, sanitize
from connectors.email.reply import new_text
from connectors.email.threading import is_token, parse_own_id, thread_key_for, token_in_address

DEFAULT_MAX_PART_BYTES = 25 * 1024 * 1024
#: Deeper nesting than this is not walked (the rest of the mail still counts).
MAX_DEPTH = 40
#: At most this many parts are looked at in one mail.
MAX_PARTS = 1000
#: Ids of earlier messages handed to threading (References can list hundreds).
MAX_REFERENCES = 50
RAW_NAME = "original.eml"

_AUTO_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_DAEMONS = ("mailer-daemon@", "postmaster@", "mail-daemon@")


class MailParseError(ValueError):
    """The mail cannot be read at all; the caller quarantines it with this reason."""


@dataclass
class _Walk:
    """What a walk over the MIME tree collected."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[InboundAttachment] = field(default_factory=list)
    inline_images: dict[str, str] = field(default_factory=dict)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    charsets: set[str] = field(default_factory=set)
    report_ids: list[str] = field(default_factory=list)
    report_type: str | None = None
    parts: int = 0
    truncated: bool = False


@dataclass(frozen=True)
class ParsedMail:
    """The message, and whether it is one Postroom sent itself (never ingested)."""

    message: InboundMessage
    own: bool = False


def parse_mail(
    raw: bytes,
    *,
    inbox_id: int,
    max_part_bytes: int = DEFAULT_MAX_PART_BYTES,
    keep_raw: bool = True,
    own_domains: frozenset[str] = frozenset(),
) -> ParsedMail:
    """Parse one raw mail; :class:`MailParseError` when it cannot be read at all."""
    if not raw or not raw.strip():
        raise MailParseError("empty message")
    msg = _parse(raw)
    message_id = h.normalize_id(h.raw_header(msg, "Message-ID"))
    source_id = message_id or "sha256:" + hashlib.sha256(raw).hexdigest()

    senders = (h.addresses(msg, "From") or h.addresses(msg, "Sender") or h.addresses(msg, "Reply-To")
               or h.addresses(msg, "Return-Path"))
    name, address = senders[0] if senders else ("", "")
    if not address:
        address = "unknown-sender@invalid"
    subject = h.header(msg, "Subject")
    walk = _Walk()
    try:
        _walk(msg, walk, depth=0, max_part_bytes=max_part_bytes, top=True)
    except RecursionError:
        walk.truncated = True
    plain = "\n\n".join(p for p in walk.plain if p.strip()) or None
    html_raw = "\n".join(walk.html) or None
    html = sanitize(html_raw) if html_raw else None
    if plain is None and html_raw:
        plain = html_to_text(html_raw) or None
    content = new_text(plain, None) if plain else None
    notes = [f"[{d['file_name'] or d['content_type']} ({d['size']} bytes) was not kept: "
             f"over the {max_part_bytes}-byte limit]" for d in walk.dropped]
    if walk.truncated:
        notes.append("[part of this mail was not read: it is nested too deeply or has too many parts]")
    if notes:
        content = "\n\n".join([content or "", *notes]).strip()
    if content is None and not walk.attachments and message_id is None and not senders:
        raise MailParseError("no sender, no Message-ID and no readable body")

    in_reply_to = h.message_ids(msg, "In-Reply-To")
    references = h.message_ids(msg, "References")
    to = h.addresses(msg, "To")
    cc = h.addresses(msg, "Cc")
    recipients = [a for _, a in to + cc + h.addresses(msg, "Delivered-To") + h.addresses(msg, "X-Original-To")]
    automatic = _automatic(msg, address, walk)
    thread_key, answered = _threading(source_id, in_reply_to, references, recipients, walk.report_ids)

    own_id = parse_own_id(message_id or "")
    own = own_id is not None and (
        h.raw_header(msg, "X-Postroom-Message") is not None
        or (not own_domains or (message_id or "").rpartition("@")[2] in own_domains)
    )
    metadata: dict[str, Any] = {
        "message_id": message_id,
        "from": [{"name": n, "email": a} for n, a in senders[:1]],
        "to": [{"name": n, "email": a} for n, a in to],
        "cc": [{"name": n, "email": a} for n, a in cc],
    }
    reply_to = h.addresses(msg, "Reply-To")
    if reply_to:
        metadata["reply_to"] = [{"name": n, "email": a} for n, a in reply_to]
    if references:
        metadata["references"] = references[:MAX_REFERENCES]
    if automatic:
        metadata["automatic"] = automatic
    if walk.inline_images:
        metadata["inline_images"] = walk.inline_images
    if walk.dropped:
        metadata["dropped_parts"] = walk.dropped
    if walk.charsets:
        metadata["charsets"] = sorted(walk.charsets)
    if plain and content != plain.strip():
        metadata["full_text"] = plain[:100_000]
    attachments = list(walk.attachments)
    if keep_raw:
        attachments.append(InboundAttachment(file_name=RAW_NAME, content_type="message/rfc822", data=raw))
        metadata["raw"] = RAW_NAME

    for attachment in attachments:
        attachment.file_name = _clean(attachment.file_name)
    address = _clean(address)
    message = InboundMessage(
        inbox_id=inbox_id,
        source_id=_clean(source_id),
        thread_key=thread_key,
        sender=SenderIdentity(source_id=address[:1000], name=_clean(name) or None,
                              email=address if "@" in address and len(address) <= 320 else None),
        text=_clean(content),
        html=_clean(html),
        subject=_clean(subject),
        attachments=attachments,
        sent_at=h.date(msg),
        in_reply_to=[_clean(i) for i in answered],
        automatic=bool(automatic),
        metadata=_clean(metadata),
    )
    return ParsedMail(message=message, own=own)


def _clean(value: Any) -> Any:
    """Text fit for any database: no NUL, no lone surrogates (undecoded bytes are read
    in whatever charset fits); containers cleaned throughout."""
    if isinstance(value, str):
        value = value.replace("\x00", "")
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            pass
        try:
            return decode_text(value.encode("utf-8", "surrogateescape"), None)[0]
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _parse(raw: bytes) -> Message:
    # compat32 records defects instead of raising, and is several times faster than
    # policy.default, whose header objects were most of the cost of a mail; headers are
    # decoded by connectors.email.headers (RFC 2047 and 2231 included).
    try:
        return email.message_from_bytes(raw, policy=policy.compat32)
    except Exception as exc:  # noqa: BLE001
        raise MailParseError(f"unreadable MIME structure: {type(exc).__name__}: {exc}") from None


def _content_type(part: Message) -> str:
    try:
        return (part.get_content_type() or "text/plain").lower()
    except Exception:  # noqa: BLE001
        return "application/octet-stream"


def _param(part: Message, name: str) -> str | None:
    try:
        value = part.get_param(name)
    except Exception:  # noqa: BLE001
        return None
    if isinstance(value, tuple):
        try:
            return email.utils.collapse_rfc2231_value(value)
        except Exception:  # noqa: BLE001
            return str(value[2])
    return str(value) if value else None


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001 - RFC 2231 parameters that make the parser raise
        name = None
    if name is None:
        name = _param(part, "name")
    if name and any("\udc80" <= c <= "\udcff" for c in name):
        name = h.decode_raw(name)
    return name.strip() if name else None


def _disposition(part: Message) -> str | None:
    try:
        value = part.get_content_disposition()
    except Exception:  # noqa: BLE001
        return None
    return value.lower() if value else None


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - a broken transfer encoding: keep what is there
        data = None
    if data is None:
        raw = part.get_payload()
        if isinstance(raw, str):
            return raw.encode("utf-8", "surrogateescape")
        return b""
    return data if isinstance(data, bytes) else bytes(data)


def _encoded_size(part: Message) -> int:
    raw = part.get_payload()
    return len(raw) if isinstance(raw, str) else 0


def _walk(part: Message, walk: _Walk, *, depth: int, max_part_bytes: int, top: bool) -> None:
    walk.parts += 1
    if walk.parts > MAX_PARTS or depth > MAX_DEPTH:
        walk.truncated = True
        return
    kind = _content_type(part)
    if kind == "multipart/report" and walk.report_type is None:
        walk.report_type = (_param(part, "report-type") or "report").lower()
    if kind.startswith("message/") or kind == "text/rfc822-headers":
        if kind in ("message/delivery-status", "message/feedback-report") and walk.report_type is None:
            walk.report_type = kind.split("/")[1]  # a report without its multipart/report
        _enclosed(part, walk, kind, max_part_bytes)
        return
    if part.is_multipart():
        children = part.get_payload()
        if not isinstance(children, list):
            return
        if kind == "multipart/alternative" and top:
            # Each alternative in full; the walk keeps only the first text and first HTML.
            before_plain, before_html = len(walk.plain), len(walk.html)
            for child in children:
                _walk(child, walk, depth=depth + 1, max_part_bytes=max_part_bytes, top=True)
            del walk.plain[before_plain + 1:]
            del walk.html[before_html + 1:]
            return
        for child in children:
            _walk(child, walk, depth=depth + 1, max_part_bytes=max_part_bytes, top=top)
        return
    disposition = _disposition(part)
    name = _filename(part)
    if top and kind in ("text/plain", "text/html") and disposition != "attachment" and not name:
        data = _payload(part)
        text, codec = decode_text(data, _param(part, "charset"))
        walk.charsets.add(codec)
        (walk.plain if kind == "text/plain" else walk.html).append(text)
        return
    _attachment(part, walk, kind, name, max_part_bytes)


def _attachment(part: Message, walk: _Walk, kind: str, name: str | None, max_part_bytes: int) -> None:
    if _encoded_size(part) * 3 // 4 > max_part_bytes:
        walk.dropped.append({"file_name": name, "content_type": kind, "size": _encoded_size(part) * 3 // 4})
        return
    data = _payload(part)
    if len(data) > max_part_bytes:
        walk.dropped.append({"file_name": name, "content_type": kind, "size": len(data)})
        return
    if not name:
        extension = {"text/plain": "txt", "text/html": "html", "text/calendar": "ics"}.get(kind)
        name = f"part-{len(walk.attachments) + 1}" + (f".{extension}" if extension else "")
    content_id = h.normalize_id(h.raw_header(part, "Content-ID"))
    if content_id:
        walk.inline_images[content_id] = name
    walk.attachments.append(InboundAttachment(file_name=name[:255], content_type=kind, data=data))


def _enclosed(part: Message, walk: _Walk, kind: str, max_part_bytes: int) -> None:
    """A forwarded mail or a report's copy of the original: kept whole, its ids noted."""
    inner = part.get_payload()
    inner_msg: Message | None = None
    if isinstance(inner, list) and inner and isinstance(inner[0], Message):
        inner_msg = inner[0]
    elif isinstance(inner, Message):
        inner_msg = inner
    if walk.report_type and inner_msg is not None:
        original = h.normalize_id(h.raw_header(inner_msg, "Message-ID"))
        if original:
            walk.report_ids.append(original)
    if kind == "message/delivery-status" or kind == "message/feedback-report":
        data = _flatten(part, None) if not isinstance(inner, list) else _as_bytes(part)
        if data is not None:
            walk.attachments.append(InboundAttachment(
                file_name=f"{kind.split('/')[1]}.txt", content_type="text/plain", data=data))
        return
    if kind == "text/rfc822-headers" or kind == "message/rfc822-headers":
        data = _payload(part)
        if walk.report_type and data:
            parsed = email.message_from_bytes(data, policy=policy.compat32)
            original = h.normalize_id(h.raw_header(parsed, "Message-ID"))
            if original:
                walk.report_ids.append(original)
        walk.attachments.append(InboundAttachment(file_name="headers.txt", content_type="text/plain", data=data))
        return
    data = _flatten(part, inner_msg)
    if data is None:
        return
    if len(data) > max_part_bytes:
        walk.dropped.append({"file_name": _filename(part), "content_type": kind, "size": len(data)})
        return
    subject = h.header(inner_msg, "Subject") if inner_msg is not None else None
    name = _filename(part) or f"{(subject or 'forwarded')[:60]}.eml"
    walk.attachments.append(InboundAttachment(file_name=name, content_type="message/rfc822", data=data))


def _as_bytes(part: Message) -> bytes | None:
    """A part's body as written (header blocks of a delivery status, for instance)."""
    try:
        whole = part.as_bytes(policy=policy.compat32)
    except Exception:  # noqa: BLE001
        return None
    return whole.split(b"\n\n", 1)[1] if b"\n\n" in whole else whole


def _flatten(part: Message, inner: Message | None) -> bytes | None:
    try:
        if inner is not None:
            return inner.as_bytes(policy=policy.compat32)
        return _payload(part)
    except Exception:  # noqa: BLE001 - fall back to the undecoded payload
        try:
            return str(part.get_payload()).encode("utf-8", "surrogateescape")
        except Exception:  # noqa: BLE001
            return None


def _automatic(msg: Message, sender: str, walk: _Walk) -> str | None:
    """What kind of machine mail this is (``bounce``, ``complaint``, ``auto_reply``,
    ``bulk``), or None for mail a person wrote."""
    if walk.report_type:
        if "feedback" in walk.report_type:
            return "complaint"
        if "disposition" in walk.report_type:
            return "read_receipt"
        return "bounce"
    if sender.startswith(_DAEMONS) or h.raw_header(msg, "X-Failed-Recipients") is not None:
        return "bounce"
    auto = (h.header(msg, "Auto-Submitted") or "").lower()
    if auto and auto != "no":
        return "auto_reply"
    if h.raw_header(msg, "X-Autoreply") is not None or h.raw_header(msg, "X-Autorespond") is not None:
        return "auto_reply"
    suppress = (h.header(msg, "X-Auto-Response-Suppress") or "").lower()
    if suppress and suppress not in ("none",):
        return "auto_reply"
    precedence = (h.header(msg, "Precedence") or "").lower().strip()
    if precedence in _AUTO_PRECEDENCE:
        return "auto_reply" if precedence == "auto_reply" else "bulk"
    return None


def _threading(
    source_id: str,
    in_reply_to: list[str],
    references: list[str],
    recipients: list[str],
    report_ids: list[str],
) -> tuple[str, list[str]]:
    """The thread key, and the ids of the messages this one answers (newest first)."""
    answered: list[str] = []
    for value in [*in_reply_to, *reversed(references), *report_ids]:
        if value not in answered:
            answered.append(value)
    for value in answered:
        own = parse_own_id(value)
        if own is not None and is_token(own[0]):
            return str(own[0]), answered[:MAX_REFERENCES]
    for address in recipients:
        token = token_in_address(address)
        if token:
            return token, answered[:MAX_REFERENCES]
    if report_ids:
        return thread_key_for(report_ids[0]), answered[:MAX_REFERENCES]
    root = references[0] if references else in_reply_to[0] if in_reply_to else source_id
    return thread_key_for(root), answered[:MAX_REFERENCES]
