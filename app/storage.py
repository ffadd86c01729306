"""Files (attachments, raw mail) stored under the data dir."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from pathlib import Path

from app.models import utcnow

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class FileStore:
    """Writes and reads files below one root folder, by relative path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        #: Folders known to exist (made once per process, not before every file).
        self._folders: set[str] = set()

    def save(self, account_id: int, data: bytes, file_name: str | None = None) -> str:
        """Store ``data``; returns the path relative to the root."""
        relative = self.reserve(account_id, file_name)
        self.write(relative, data)
        return relative

    def reserve(self, account_id: int, file_name: str | None = None) -> str:
        """A new, unique path relative to the root for a file still to be written with
        :meth:`write` (its folder exists)."""
        now = utcnow()
        safe = _UNSAFE.sub("_", (file_name or "file"))[-80:] or "file"
        folder = f"attachments/{account_id}/{now:%Y/%m}"
        if folder not in self._folders:
            (self.root / folder).mkdir(parents=True, exist_ok=True)
            self._folders.add(folder)
        return f"{folder}/{uuid.uuid4().hex}-{safe}"

    def write(self, relative: str, data: bytes) -> None:
        """Write a file at a path :meth:`reserve` gave.

        The file is written under its final, new and unique name: nothing refers to it
        before the caller commits the row naming it, by which time it is complete (a
        temporary name and a rename cost a third more per file, e-mail keeping one per mail).
        """
        target = self.root / relative
        try:
            out = open(target, "xb")  # noqa: SIM115
        except FileNotFoundError:  # the folder was removed meanwhile
            target.parent.mkdir(parents=True, exist_ok=True)
            out = open(target, "xb")  # noqa: SIM115
        with out:
            out.write(data)

    def write_all(self, files: Sequence[tuple[str, bytes]]) -> None:
        """:meth:`write` each (relative path, data)."""
        for relative, data in files:
            self.write(relative, data)

    def path(self, relative: str) -> Path:
        """The absolute path of a stored file; refuses paths that leave the root."""
        target = (self.root / relative).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise ValueError("path outside the file store")
        return target
