"""Bot API updates -> InboundMessage (https://core.telegram.org/bots/api#update).

Only private chats are taken (as Chatwoot does): group, supergroup and channel messages
are skipped, and so are update kinds other than ``message`` and ``edited_message``.

* message id: ``"<chat id>:<message_id>"`` (``message_id`` is unique per chat only);
* sender: the Telegram user id, with name, username and language as profile data;
* time: ``date`` (Unix seconds); text: ``text`` or a media message's ``caption``;
* files: ``photo`` (the largest size), ``document``, ``voice``, ``audio``, ``video``,
  ``video_note`` and ``sticker`` are fetched with ``getFile``; other kinds (location,
  contact, poll…) are stored as a short note naming the kind, so nothing goes unseen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.base import InboundMessage, SenderIdentity

#: Message fields holding one file: (content type when the platform gives none, file name stem).
_FILE_KINDS: dict[str, tuple[str, str]] = {
    "document": ("application/octet-stream", "document"),
    "voice": ("audio/ogg", "voice"),
    "audio": ("audio/mpeg", "audio"),
    "video": ("video/mp4", "video"),
    "video_note": ("video/mp4", "video-note"),
    "sticker": ("image/webp", "sticker"),
}
_EXTENSIONS = {"audio/ogg": ".ogg", "audio/mpeg": ".mp3", "video/mp4": ".mp4", "image/webp": ".webp",
               "image/jpeg": ".jpg"}
#: Kinds shown as a note when the message has no text and no file.
_NOTED_KINDS = ("location", "venue", "contact", "poll", "dice", "game", "story")


@dataclass(frozen=True)
class FileRef:
    """A file to fetch with ``getFile`` before the message is handed over."""

    file_id: str
    file_name: str
    content_type: str
    file_size: int | None = None


@dataclass
class ParsedUpdate:
    """An update turned into a message, and the files it still needs."""

    message: InboundMessage
    files: list[FileRef] = field(default_factory=list)


def parse_update(inbox_id: int, update: dict[str, Any]) -> ParsedUpdate | None:
    """The message an update carries, or None when Postroom does not take it."""
    edited = "edited_message" in update
    payload = update.get("edited_message") if edited else update.get("message")
    if not isinstance(payload, dict):
        return None
    chat = payload.get("chat") or {}
    sender = payload.get("from") or {}
    if chat.get("type") != "private" or "id" not in sender or sender.get("is_bot"):
        return None
    files = [] if edited else _files(payload)
    text = payload.get("text") if "text" in payload else payload.get("caption")
    if text is None and not files and not edited:
        text = _note(payload)
    metadata: dict[str, Any] = {"telegram_update_id": update.get("update_id")}
    if edited and payload.get("edit_date"):
        metadata["edit_date"] = payload["edit_date"]
    reply_to = (payload.get("reply_to_message") or {}).get("message_id")
    message = InboundMessage(
        inbox_id=inbox_id,
        source_id=f"{chat['id']}:{payload['message_id']}",
        sender=_sender(sender),
        text=text,
        sent_at=datetime.fromtimestamp(int(payload.get("date") or 0), UTC) if payload.get("date") else None,
        in_reply_to=[f"{chat['id']}:{reply_to}"] if reply_to else [],
        metadata=metadata,
        edited=edited,
    )
    return ParsedUpdate(message, files)


def _sender(user: dict[str, Any]) -> SenderIdentity:
    name = " ".join(part for part in (user.get("first_name"), user.get("last_name")) if part)
    attributes = {key: user[key] for key in ("username", "language_code") if user.get(key)}
    return SenderIdentity(source_id=str(user["id"]), name=name or user.get("username"), attributes=attributes)


def _files(payload: dict[str, Any]) -> list[FileRef]:
    found = []
    photos = payload.get("photo")
    if isinstance(photos, list) and photos:
        largest = max(photos, key=lambda p: (p.get("width", 0) * p.get("height", 0), p.get("file_size", 0)))
        found.append(FileRef(largest["file_id"], f"photo-{largest.get('file_unique_id', 'file')}.jpg",
                             "image/jpeg", largest.get("file_size")))
    for kind, (default_type, stem) in _FILE_KINDS.items():
        item = payload.get(kind)
        if not isinstance(item, dict) or "file_id" not in item:
            continue
        content_type = item.get("mime_type") or default_type
        name = item.get("file_name") or f"{stem}-{item.get('file_unique_id', 'file')}{_EXTENSIONS.get(content_type, '')}"
        found.append(FileRef(item["file_id"], name, content_type, item.get("file_size")))
    return found


def _note(payload: dict[str, Any]) -> str:
    kind = next((k for k in _NOTED_KINDS if k in payload), "message")
    return f"[Telegram {kind}: not shown in Postroom]"
