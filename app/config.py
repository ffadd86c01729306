"""Service settings, read from ``POSTROOM_*`` environment variables.

With no variables set, the defaults give the embedded mode: a SQLite file under
``./data/``, one process, in-process event fan-out.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """All of Postroom's configuration in one object."""

    model_config = SettingsConfigDict(env_prefix="POSTROOM_", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Attachments, raw mail, keys.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite+aiosqlite:///<data_dir>/postroom.db",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key for credential encryption and signed tickets; "
        "generated once into <data_dir>/secret.key when unset.",
    )
    broker_url: str = Field(
        default="memory://",
        description="Fan-out between processes: memory:// (one process), "
        "postgresql://… (LISTEN/NOTIFY) or redis://… (pub/sub).",
    )
    event_retention_days: float = 7.0
    stream_queue_size: int = Field(default=2000, description="Frames buffered per websocket "
                                   "before a slow client is closed with 4008.")
    stream_max_connections_per_user: int = 20
    stream_idle_timeout_seconds: float = 300.0
    stream_compression: bool = Field(default=False, description="Offer permessage-deflate on "
                                     "websockets: less bandwidth, ~2x the CPU per delivered frame "
                                     "and a zlib state per connection (docs/performance.md).")
    webhook_backoff: str = Field(
        default="5,30,120,600,1800,3600,7200,14400,28800,43200",
        description="Seconds between webhook retries, comma-separated; the last repeats.",
    )
    webhook_give_up_seconds: float = Field(default=3 * 24 * 3600, description="Retry a delivery "
                                           "this long; a webhook failing this long is disabled.")
    webhook_allow_private: bool = Field(default=False, description="Allow webhook URLs on "
                                        "private, loopback and link-local addresses.")
    webhook_timeout_seconds: float = 10.0
    bot_handoff_after_attempts: int = Field(default=3, description="Failed deliveries to a bot "
                                            "before its pending conversation goes to people.")
    sla_warning_leads: str = Field(default="7200,1800", description="Seconds before a due time "
                                   "at which sla.warning is sent, comma-separated.")
    sla_scheduler: bool = Field(default=True, description="Send SLA warnings and breaches from "
                                "this process (several processes may; each clock breaches once).")
    stream_catch_up_seconds: float = Field(default=1.0, description="How often each process "
                                           "reads the event log even without a wake-up.")
    connector_runner: bool = Field(default=True, description="Poll pulled channels (Telegram) "
                                   "and send their replies from this process.")
    connector_inboxes: str = Field(default="", description="Inbox ids (comma-separated) this "
                                   "process's runner may take; empty: every inbox. Dedicates a "
                                   "process to some busy inboxes.")
    connector_lease_seconds: float = Field(default=30.0, description="How long a process's claim "
                                           "on an inbox lasts without a heartbeat; a dead owner's "
                                           "inboxes move to another process after this.")
    connector_scan_seconds: float = Field(default=5.0, description="How often the runner renews "
                                          "its leases and looks for inboxes to claim.")
    connector_backoff: str = Field(default="1,2,5,15,30,60,120,300", description="Seconds between "
                                   "retries after connector errors (jittered), comma-separated; "
                                   "the last repeats.")
    connector_auth_retry_seconds: float = Field(default=900.0, description="Retry an inbox whose "
                                                "credentials were refused after this long (at once "
                                                "when its settings change).")
    connector_send_give_up_seconds: float = Field(default=24 * 3600.0, description="A reply that "
                                                  "could not be sent for this long is marked failed.")
    public_url: str = Field(default="http://localhost:8000", description="This server's address "
                            "as customers reach it (links in satisfaction-survey messages).")
    smtp_listen: str | None = Field(default=None, description="host:port for the SMTP receiver "
                                    "(mail forwarded to e-mail inboxes); off when unset.")
    log_format: str = Field(default="text", pattern="^(text|json)$")
    log_level: str = "INFO"
    page_size: int = 25
    max_upload_bytes: int = 25 * 1024 * 1024
    reopen_window_days: int = Field(
        default=30,
        description="A new incoming message reopens a resolved conversation younger than "
        "this many days; an older one starts a new conversation (per-inbox override).",
    )

    @property
    def sla_warning_leads_seconds(self) -> tuple[float, ...]:
        """The warning lead times as numbers."""
        return tuple(float(x) for x in self.sla_warning_leads.split(",") if x.strip())

    @property
    def connector_backoff_seconds(self) -> list[float]:
        """The connector retry schedule as numbers."""
        return [float(x) for x in self.connector_backoff.split(",") if x.strip()] or [30.0]

    @property
    def connector_inbox_ids(self) -> tuple[int, ...] | None:
        """``connector_inboxes`` as ids (None: every inbox)."""
        ids = tuple(int(x) for x in self.connector_inboxes.split(",") if x.strip())
        return ids or None

    @property
    def webhook_backoff_seconds(self) -> list[float]:
        """The retry schedule as numbers."""
        return [float(x) for x in self.webhook_backoff.split(",") if x.strip()] or [60.0]

    @property
    def resolved_database_url(self) -> str:
        """The database URL, with the embedded SQLite default filled in."""
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'postroom.db').resolve()}"

    def secret_key_bytes(self) -> bytes:
        """The secret key; created and kept in the data dir on first use when unset."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip().encode()


def normalize_database_url(url: str) -> str:
    """Accept plain ``postgresql://`` and ``sqlite://`` URLs and pick the async driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests clear the cache to change them)."""
    return Settings()
