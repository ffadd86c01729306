"""Schema migrations through Alembic (the only way the schema is made)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection



def project_root() -> Path:
    """The folder holding ``alembic.ini`` and ``migrations/``: the checkout, or the
    working directory of an installed copy (as in the Docker image)."""
    for candidate in (Path(__file__).resolve().parent.parent, Path.cwd()):
        if (candidate / "alembic.ini").is_file() and (candidate / "migrations").is_dir():
            return candidate
    raise RuntimeError("alembic.ini and migrations/ not found; run from the Postroom folder")


def alembic_config(url: str | None = None) -> Config:
    """Alembic's config for this checkout, optionally pointed at ``url``."""
    root = project_root()
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    if url:
        config.attributes["database_url"] = url
    return config


def head_revision() -> str | None:
    """The newest migration."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The migration a database is at."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str) -> None:
    """Upgrade the database at ``url`` to the newest migration (blocking)."""
    command.upgrade(alembic_config(url), "head")


async def upgrade_async(url: str) -> None:
    """Upgrade from async code (Alembic's env runs its own event loop in a thread)."""
    await asyncio.to_thread(upgrade, url)
