"""Files (attachments, raw mail) stored under the data dir."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from app.models import utcnow

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class FileStore:
    """Writes and reads files below one root folder, by relative path."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, account_id: int, data: bytes, file_name: str | None = None) -> str:
        """Store ``data``; returns the path relative to the root."""
        now = utcnow()
        safe = _UNSAFE.sub("_", (file_name or "file"))[-80:] or "file"
        relative = Path("attachments", str(account_id), f"{now:%Y/%m}", f"{uuid.uuid4().hex}-{safe}")
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(target)
        return relative.as_posix()

    def path(self, relative: str) -> Path:
        """The absolute path of a stored file; refuses paths that leave the root."""
        target = (self.root / relative).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise ValueError("path outside the file store")
        return target
