"""``postroom reports rebuild``: backfill reporting events, with a progress bar."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from sqlalchemy import select

from app.config import Settings
from app.models import Account
from app.reports.rebuild import count_conversations, rebuild_batch
from app.runtime import Runtime


class ProgressBar:
    """A one-line text progress bar (``[#####.....] 50% 500/1000 conversations``)."""

    def __init__(self, label: str, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.label, self.stream, self.width = label, stream, width
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        share = done / total if total else 1.0
        filled = int(share * self.width)
        rate = done / max(time.monotonic() - self.started, 1e-6)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {share:4.0%} "
                          f"{done}/{total} conversations ({rate:,.0f}/s)")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


async def rebuild(settings: Settings, account_ids: list[int] | None) -> int:
    """Rebuild the given accounts (all when None); prints what was added."""
    runtime = Runtime.from_settings(settings)
    try:
        async with runtime.db.read_session() as session:
            ids = account_ids or list((await session.scalars(select(Account.id).order_by(Account.id))).all())
        for account_id in ids:
            async with runtime.db.read_session() as session:
                total = await count_conversations(session, account_id)
            bar = ProgressBar(f"account {account_id}")
            added = done = after = 0
            while True:
                # One transaction per batch (facts and roll-up together), so a large
                # account never holds the database's write lock for the whole run.
                async with runtime.db.write_session() as session:
                    new, after, walked = await rebuild_batch(session, account_id, after)
                if not walked:
                    break
                added, done = added + new, done + walked
                bar(done, total)
            print(f"account {account_id}: {added} reporting events added")
    finally:
        await runtime.db.dispose()
    return 0
