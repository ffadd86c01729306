"""The Telegram channel: ``getUpdates`` long polling in, ``sendMessage`` (and
``sendPhoto`` / ``sendDocument``) out.

Settings (channel fields of the inbox): ``bot_token`` (secret, required),
``api_base_url`` (default ``https://api.telegram.org``; the sandbox's address in tests),
``poll_timeout`` (long-poll seconds, default 25).

The cursor is ``{"offset": last update_id + 1}``; Telegram forgets an update once a
``getUpdates`` call passes a higher offset, so the runner saves the cursor only with the
messages it covers and a crash makes Telegram hand them out again
(https://core.telegram.org/bots/api#getupdates).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from connectors.base import (
    ConnectorConfig,
    Cursor,
    InboundAttachment,
    InboundMessage,
    OutboundMessage,
    PermanentSendError,
    PullConnector,
    TransientError,
)
from connectors.base.text import split_text
from connectors.telegram.client import DEFAULT_BASE_URL, BotApi, Refused
from connectors.telegram.parse import FileRef, parse_update

#: ``getFile`` serves files up to 20 MB (https://core.telegram.org/bots/api#getfile).
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
#: ``sendMessage`` text and media ``caption`` limits, in characters.
MAX_TEXT = 4096
MAX_CAPTION = 1024
DEFAULT_POLL_TIMEOUT = 25


class TelegramConnector(PullConnector):
    """One bot, polled for private-chat messages."""

    channel_type = "telegram"
    #: Telegram keeps undelivered updates for 24 hours: warn well before.
    stale_after = timedelta(hours=20)

    def __init__(self, config: ConnectorConfig) -> None:
        super().__init__(config)
        settings = config.settings
        self.poll_timeout = max(0, int(settings.get("poll_timeout") or DEFAULT_POLL_TIMEOUT))
        self.api = BotApi(config.secret("bot_token"), base_url=str(settings.get("api_base_url") or DEFAULT_BASE_URL))

    @property
    def fetch_timeout(self) -> float:
        """The long poll plus room for the answer and the files it names."""
        return self.poll_timeout + 120.0

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self.api.aclose()

    async def fetch(self, cursor: Cursor) -> tuple[list[InboundMessage], Cursor]:
        """One ``getUpdates`` long poll from the cursor's offset."""
        params: dict[str, Any] = {
            "timeout": self.poll_timeout,
            "limit": 100,
            "allowed_updates": ["message", "edited_message"],
        }
        if cursor.get("offset") is not None:
            params["offset"] = int(cursor["offset"])
        try:
            updates = await self.api.call("getUpdates", params, timeout=self.poll_timeout + 15.0)
        except Refused as exc:
            raise TransientError(f"getUpdates: {exc}") from None
        offset = cursor.get("offset")
        messages = []
        for update in updates or []:
            update_id = int(update["update_id"])
            offset = max(int(offset or 0), update_id + 1)
            parsed = parse_update(self.config.inbox_id, update)
            if parsed is None:
                continue
            for ref in parsed.files:
                parsed.message.attachments.append(await self._attachment(ref))
            messages.append(parsed.message)
        return messages, ({"offset": offset} if offset is not None else dict(cursor))

    async def send(self, message: OutboundMessage) -> str:
        """Send the reply's files, then any text left; returns the first message's id."""
        chat_id = message.recipient_source_id
        extra = self._reply_parameters(chat_id, message)
        text = message.text or ""
        ids: list[int] = []
        try:
            for attachment in message.attachments:
                caption = text if text and len(text) <= MAX_CAPTION and not ids else None
                ids.append(await self._send_file(chat_id, attachment, caption, extra))
                if caption:
                    text = ""
                extra = {}
            for chunk in split_text(text, MAX_TEXT):
                result = await self.api.call("sendMessage", {"chat_id": chat_id, "text": chunk, **extra})
                ids.append(int(result["message_id"]))
                extra = {}
        except Refused as exc:
            raise PermanentSendError(exc.code, exc.description) from None
        if not ids:
            raise PermanentSendError(400, "nothing to send: the reply has no text and no file")
        return f"{chat_id}:{ids[0]}"

    async def _send_file(
        self, chat_id: str, attachment: InboundAttachment, caption: str | None, extra: dict[str, Any]
    ) -> int:
        if attachment.data is None:
            raise PermanentSendError(400, f"attachment {attachment.file_name or ''} has no stored bytes")
        is_photo = attachment.content_type in ("image/jpeg", "image/png") and len(attachment.data) <= 10 * 1024 * 1024
        method, field = ("sendPhoto", "photo") if is_photo else ("sendDocument", "document")
        params: dict[str, Any] = {"chat_id": chat_id, **extra}
        if caption:
            params["caption"] = caption
        name = attachment.file_name or field
        result = await self.api.call(method, params, files={field: (name, attachment.data, attachment.content_type)})
        return int(result["message_id"])

    async def _attachment(self, ref: FileRef) -> InboundAttachment:
        """The file's bytes; a file Telegram will not serve is kept as its name only."""
        attachment = InboundAttachment(file_name=ref.file_name, content_type=ref.content_type)
        if ref.file_size is not None and ref.file_size > MAX_DOWNLOAD_BYTES:
            return attachment
        try:
            info = await self.api.call("getFile", {"file_id": ref.file_id})
            if info and info.get("file_path"):
                attachment.data = await self.api.download(info["file_path"], max_bytes=MAX_DOWNLOAD_BYTES)
        except Refused:
            pass  # too big, or gone: the message is still worth storing
        return attachment

    @staticmethod
    def _reply_parameters(chat_id: str, message: OutboundMessage) -> dict[str, Any]:
        """Quote the message this reply answers, when it is in the same chat."""
        for source_id in message.in_reply_to:
            chat, _, message_id = source_id.partition(":")
            if chat == chat_id and message_id.isdigit():
                return {"reply_parameters": {"message_id": int(message_id), "allow_sending_without_reply": True}}
        return {}

