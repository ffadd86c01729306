"""Files a platform announces by id only, fetched before their message is stored.

WhatsApp and LINE webhooks name a message's file by a platform id; its bytes must be
fetched with the channel's token (WhatsApp: ``GET /{media-id}``, then the URL it
answers; LINE: ``GET /v2/bot/message/{messageId}/content``). A parser leaves an
:class:`~connectors.base.messages.InboundAttachment` with ``platform_id`` and no bytes;
:func:`fetch_media` asks the connector for each one and fills the bytes in.

A file that cannot be fetched never costs its message: the attachment is kept (name and
type, no bytes), the text gains a visible note naming the platform id, and
``metadata["media_errors"]`` records the id and the reason, so someone can still ask the
platform for it while the id lives.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.base.connector import redact
from connectors.base.errors import ConnectorError
from connectors.base.messages import InboundAttachment, InboundMessage

#: The largest file fetched into Postroom's store (larger ones keep their id and a note).
MAX_MEDIA_BYTES = 25 * 1024 * 1024
#: Seconds one file may take, the platform's lookups included.
MEDIA_TIMEOUT = 30.0
#: Files of one webhook call fetched at the same time.
CONCURRENCY = 4


class MediaUnavailable(Exception):
    """The platform did not give the file; the message says why (no secrets in it)."""


@dataclass
class Media:
    """A fetched file: its bytes and the type the platform gave (None: unknown)."""

    data: bytes
    content_type: str | None = None


Downloader = Callable[[str], Awaitable[Media]]


def default_name(kind: str, content_type: str | None) -> str:
    """A file name for a file the platform sent without one (``image.jpg``)."""
    extension = mimetypes.guess_extension((content_type or "").split(";")[0].strip()) or ""
    return f"{kind}{extension}"


async def download(http: httpx.AsyncClient, url: str, *, headers: dict[str, str], max_bytes: int = MAX_MEDIA_BYTES,
                   secrets: Iterable[Any] = ()) -> Media:
    """GET ``url`` and read at most ``max_bytes`` of it; :class:`MediaUnavailable` on an
    error answer, a larger file, or a network failure (secrets redacted from the reason)."""
    try:
        async with http.stream("GET", url, headers=headers, follow_redirects=True,
                               timeout=httpx.Timeout(MEDIA_TIMEOUT, connect=10.0)) as response:
            if response.status_code != 200:
                body = (await response.aread())[:300].decode("utf-8", "replace")
                raise MediaUnavailable(redact(f"HTTP {response.status_code} {body}".strip(), secrets))
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise MediaUnavailable(f"the file is {declared} bytes, over the {max_bytes}-byte limit")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise MediaUnavailable(f"the file is over the {max_bytes}-byte limit")
                chunks.append(chunk)
            return Media(b"".join(chunks), response.headers.get("content-type"))
    except httpx.HTTPError as exc:
        raise MediaUnavailable(redact(f"{type(exc).__name__}: {exc}", secrets)) from None


def waiting(message: InboundMessage) -> list[InboundAttachment]:
    """The attachments of ``message`` still to be fetched by platform id."""
    return [a for a in message.attachments if a.platform_id and a.data is None]


async def fetch_media(download_by_id: Downloader, messages: Sequence[InboundMessage], *,
                      platform: str, timeout: float = MEDIA_TIMEOUT) -> int:
    """Fetch every waiting attachment of ``messages`` (a few at a time); returns how many
    could not be fetched, each noted on its message."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(message: InboundMessage, attachment: InboundAttachment) -> bool:
        assert attachment.platform_id is not None
        async with limit:
            try:
                media = await asyncio.wait_for(download_by_id(attachment.platform_id), timeout)
            except MediaUnavailable as exc:
                reason = str(exc)
            except ConnectorError as exc:
                reason = str(exc)
            except TimeoutError:
                reason = f"no answer within {timeout:g} seconds"
            else:
                attachment.data = media.data
                if media.content_type and not media.content_type.startswith("application/octet-stream"):
                    _retype(attachment, media.content_type)
                return True
        _note(message, attachment, platform, reason)
        return False

    jobs = [one(m, a) for m in messages for a in waiting(m)]
    return sum(1 for ok in await asyncio.gather(*jobs) if not ok)


def _retype(attachment: InboundAttachment, content_type: str) -> None:
    """Take the type the download gave; a name made up from the guessed type follows it."""
    stem = (attachment.file_name or "").rsplit(".", 1)[0]
    if stem and attachment.file_name == default_name(stem, attachment.content_type):
        attachment.file_name = default_name(stem, content_type)
    attachment.content_type = content_type


def _note(message: InboundMessage, attachment: InboundAttachment, platform: str, reason: str) -> None:
    """Say on the message itself that a file is missing, and which id it had."""
    what = attachment.file_name or "a file"
    note = f"[{what} could not be fetched from {platform} (id {attachment.platform_id}): {reason}]"
    message.text = f"{message.text}\n{note}" if message.text else note
    message.metadata.setdefault("media_errors", []).append({"id": attachment.platform_id, "error": reason})
