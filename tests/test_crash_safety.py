"""A process killed in the middle of a batch leaves the whole batch or none of it;
two processes racing on the same messages store each one once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from sqlalchemy import func, select

from app.models import Message
from tests.conftest import ROOT

WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from app.db import Database
    from app.tickets.ingest import ingest_batch, ingest_messages
    from connectors.base import InboundMessage, SenderIdentity

    url, inbox_id, mode, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    messages = [
        InboundMessage(inbox_id=inbox_id, source_id=f"crash-{i}",
                       sender=SenderIdentity(source_id=f"s{i % 50}"), text=f"m{i}")
        for i in range(count)
    ]

    async def main():
        db = Database(url)
        if mode == "hang":
            async with db.write_session() as session:
                await ingest_batch(session, messages)
                print("BATCH-WRITTEN", flush=True)
                await asyncio.sleep(3600)   # killed here, before the commit
        else:
            for start in range(0, count, 50):
                await ingest_messages(db, messages[start:start + 50])
            print("DONE", flush=True)
        await db.dispose()

    asyncio.run(main())
    """
)


def run_worker(url: str, inbox_id: int, mode: str, count: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, url, str(inbox_id), mode, str(count)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ},
    )


async def stored(runtime, inbox_id: int) -> int:
    async with runtime.db.read_session() as session:
        return await session.scalar(select(func.count()).select_from(Message).where(Message.inbox_id == inbox_id))


async def test_kill_9_during_a_batch_leaves_nothing_then_a_rerun_stores_all(tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    url = runtime.db.url
    worker = run_worker(url, inbox_id, "hang", 300)
    assert worker.stdout.readline().strip() == "BATCH-WRITTEN"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    assert await stored(runtime, inbox_id) == 0

    rerun = run_worker(url, inbox_id, "all", 300)
    assert rerun.stdout.readline().strip() == "DONE"
    rerun.wait(timeout=60)
    assert await stored(runtime, inbox_id) == 300


async def test_two_processes_racing_on_the_same_messages_store_each_once(tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    workers = [run_worker(runtime.db.url, inbox_id, "all", 400) for _ in range(2)]
    for worker in workers:
        assert worker.stdout.readline().strip() == "DONE"
        assert worker.wait(timeout=120) == 0
    assert await stored(runtime, inbox_id) == 400
