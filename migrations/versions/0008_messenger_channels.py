"""Messenger push channels: Meta, WhatsApp, LINE (#7).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 23:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Push channels need no tables of their own: messages go through ingest
    # (UNIQUE(inbox_id, source_id)), receipts update messages, and unreadable events
    # go to the quarantine (quarantined_messages, 0007).
    pass


def downgrade() -> None:
    pass
