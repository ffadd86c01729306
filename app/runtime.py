"""What a running Postroom process holds: settings, database, file store, secrets box."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.auth.secrets_box import SecretsBox
from app.config import Settings
from app.db import Database
from app.storage import FileStore


@dataclass
class Runtime:
    """The process's shared services, built once at start-up."""

    settings: Settings
    db: Database
    store: FileStore
    box: SecretsBox
    extras: dict[str, object] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        """Build the services the settings describe."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            settings=settings,
            db=Database(settings.resolved_database_url),
            store=FileStore(settings.data_dir),
            box=SecretsBox(settings.secret_key_bytes()),
        )
