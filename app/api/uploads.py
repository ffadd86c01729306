"""Reading ``multipart/form-data`` requests with ``attachments[]`` files, under one size limit.

Used by the agents' messages endpoint and by the live-chat widget, so both refuse the
same way: at most :data:`MAX_FILES_PER_MESSAGE` files (Chatwoot's limit), and 413 as
soon as the files together pass ``limit`` bytes (read with a running total, never
buffered whole first).
"""

from __future__ import annotations

import re

from starlette.datastructures import UploadFile
from starlette.requests import Request

from app.errors import TooLarge

#: Chatwoot's limit on files per message.
MAX_FILES_PER_MESSAGE = 15
#: Room for the form's own fields and part headers beyond the files' bytes.
FORM_OVERHEAD_BYTES = 64 * 1024

#: (file name, content type, bytes)
Upload = tuple[str | None, str | None, bytes]

_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
#: Types a browser would run or render as a page if a file were ever opened directly.
_ACTIVE = ("html", "xml", "javascript", "ecmascript", "svg", "xhtml")


def is_multipart(request: Request) -> bool:
    """Whether the request carries a ``multipart/form-data`` body."""
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


def safe_content_type(declared: str | None) -> str:
    """A client-declared file type, or ``application/octet-stream`` when it is malformed or
    a type a browser would execute (HTML, SVG, scripts)."""
    value = (declared or "").split(";", 1)[0].strip().lower()
    if not _MIME.match(value) or any(word in value for word in _ACTIVE):
        return "application/octet-stream"
    return value


async def read_multipart(request: Request, limit: int, *, max_fields: int = 50) -> tuple[dict[str, str], list[Upload]]:
    """The text fields and ``attachments[]`` (or ``attachments``) files of a multipart request.

    413 when the declared length or the files' running total passes ``limit``; 400 (from
    Starlette) when there are more than :data:`MAX_FILES_PER_MESSAGE` files.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + FORM_OVERHEAD_BYTES:
        raise TooLarge(f"attachments are larger than {limit} bytes in all")
    # Too many files or fields, or a broken body: Starlette answers 400 itself.
    async with request.form(max_files=MAX_FILES_PER_MESSAGE, max_fields=max_fields) as form:
        files = [f for f in form.getlist("attachments[]") + form.getlist("attachments") if isinstance(f, UploadFile)]
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        total = 0
        uploads: list[Upload] = []
        for upload in files:
            data = await upload.read(limit - total + 1)
            total += len(data)
            if total > limit:
                raise TooLarge(f"attachments are larger than {limit} bytes in all")
            uploads.append((upload.filename, upload.content_type, data))
    return fields, uploads
