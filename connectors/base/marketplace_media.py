"""Images on marketplace chats, shared by every marketplace connector.

Inbound: a platform's image message becomes an ``InboundAttachment`` naming the image's
URL (:func:`image_attachment`); :func:`download_attachments` then fetches the bytes
(with ``connectors.base.media.download``, the size-capped streaming download every
channel shares), so ingest stores a real file as it does for Telegram's and Meta's media. When the download
fails (gone, too big, refused, slow) the attachment keeps the platform URL only, and the
message is stored all the same.

Outbound: a reply's images are sent one platform message each before its text
(:meth:`MarketplaceConnector.send`); the platform ids of all but the last are kept in
:class:`OwnMessages`, so the next pass does not store them again as echoes.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
from collections import OrderedDict
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpx

from connectors.base.media import MediaUnavailable, download
from connectors.base.messages import InboundAttachment, InboundMessage

log = logging.getLogger("postroom.connectors.marketplace")

#: Images larger than this are kept as their URL (every marketplace's chat limit is lower).
MAX_IMAGE_BYTES = 10 * 1024 * 1024
DOWNLOAD_TIMEOUT = 20.0


def image_attachment(url: str, *, content_type: str | None = None, name: str | None = None) -> InboundAttachment:
    """An image a buyer sent, by its platform URL (bytes fetched later)."""
    path = urlsplit(url).path
    file_name = name or path.rsplit("/", 1)[-1] or "image"
    guessed = content_type or mimetypes.guess_type(file_name)[0] or "image/jpeg"
    return InboundAttachment(file_name=file_name, content_type=guessed, external_url=url)


async def download_attachments(client: httpx.AsyncClient, messages: Iterable[InboundMessage], *,
                               timeout: float = DOWNLOAD_TIMEOUT, max_bytes: int = MAX_IMAGE_BYTES) -> int:
    """Fetch the bytes of every attachment that has only a URL; returns how many were
    fetched. One that cannot be fetched keeps its URL."""
    fetched = 0
    for message in messages:
        for attachment in message.attachments:
            if attachment.data is not None or not attachment.external_url:
                continue
            try:
                media = await asyncio.wait_for(
                    download(client, attachment.external_url, headers={}, max_bytes=max_bytes), timeout)
            except (MediaUnavailable, TimeoutError) as exc:
                log.info("image not downloaded, keeping its URL: %s", str(exc)[:200] or "timeout")
                continue
            attachment.data = media.data
            content_type = (media.content_type or "").split(";")[0].strip()
            if content_type.startswith(("image/", "video/", "application/pdf")):
                attachment.content_type = content_type
            fetched += 1
    return fetched


class OwnMessages:
    """Platform ids of messages Postroom sent that are not a reply's own id (the images
    sent before its text), so the poller skips them; the most recent few thousand only."""

    def __init__(self, size: int = 5000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def add(self, source_id: str) -> None:
        """Remember one id."""
        self._ids[source_id] = None
        while len(self._ids) > self._size:
            self._ids.popitem(last=False)

    def __contains__(self, source_id: object) -> bool:
        return source_id in self._ids
