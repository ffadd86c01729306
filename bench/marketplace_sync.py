"""First sync of a Shopee shop: the connector runner pulling every conversation and message
from the Shopee emulator into a fresh database.

    .venv/bin/python bench/marketplace_sync.py                       # 10,000 conversations x 10 messages, PostgreSQL
    .venv/bin/python bench/marketplace_sync.py --conversations 1000 --sizes 200 --database sqlite   # quick
    .venv/bin/python bench/marketplace_sync.py --connector-only          # the connector walk alone, 1k and 10k

For each shop size (``--sizes``, then ``--conversations``) a fresh process (so its peak
memory is its own):

1. starts ``connectors/shopee/sandbox.py`` in a process of its own, filled with that many
   conversations of ``--messages`` messages (two buyer's, one seller's, in Thai,
   Vietnamese and Chinese);
2. **baseline**: the Shopee connector alone walks the whole shop (``fetch`` until the
   pass ends, every page signed, parsed, nothing stored): how fast the emulator and the
   HTTP round trips can deliver;
3. **sync**: a connector runner (the production path: lease, fetch, ``ingest_messages``
   with the cursor in the same transaction) syncs the shop into a fresh, migrated
   database; messages/s is counted from the runner's start to the last message stored;
4. memory: the process's peak RSS (``ru_maxrss``) and its RSS sampled during the sync.

Memory flat in the number of conversations means the peak RSS of the largest shop is
close to the smallest's (one page of conversations and their messages is held at a time).
Target: >= 1,000 messages/s into PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (puts the project root on sys.path)

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from app.auth.service import create_account  # noqa: E402
from app.config import Settings  # noqa: E402
from app.models import Message  # noqa: E402
from app.runner import ConnectorRunner  # noqa: E402
from app.runtime import Runtime  # noqa: E402
from app.tickets.inboxes import SECRET_FIELDS, create_inbox  # noqa: E402
from connectors.base import ConnectorConfig  # noqa: E402
from connectors.shopee import ShopeeConnector  # noqa: E402

TARGET = 1000.0


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _start_sandbox(conversations: int, messages: int) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "connectors.shopee.sandbox", "--conversations", str(conversations),
         "--messages", str(messages), "--port", str(_free_port())],
        cwd=_common.ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    channel = json.loads(process.stdout.readline())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(channel["api_base_url"] + "/", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return process, channel


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _baseline(channel: dict[str, Any]) -> tuple[int, float]:
    """The connector alone: walk the shop once, store nothing."""
    secrets = {k: v for k, v in channel.items() if k in SECRET_FIELDS}
    settings = {k: v for k, v in channel.items() if k not in SECRET_FIELDS and k != "type"}
    connector = ShopeeConnector(ConnectorConfig(0, {**settings, "poll_interval": 3600}, secrets))
    cursor: dict[str, Any] = {}
    count = 0
    started = time.perf_counter()
    while True:
        messages, cursor = await connector.fetch(cursor)
        count += len(messages)
        if "page" not in cursor:
            break
    elapsed = time.perf_counter() - started
    await connector.aclose()
    return count, elapsed


async def _sync(database: str, url: str, channel: dict[str, Any], expected: int) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="postroom-bench-mkt-"))
    settings = Settings(database_url=url, data_dir=data_dir, connector_scan_seconds=0.5)
    runtime = Runtime.from_settings(settings)
    async with runtime.db.write_session() as session:
        account = await create_account(session, "Marketplace bench")
        inbox = await create_inbox(session, runtime.box, account.id, name="Shopee shop",
                                   channel={**channel, "poll_interval": 3600})
        inbox_id = inbox.id
    runner = ConnectorRunner(runtime.db, runtime.store, runtime.box, settings, only=(inbox_id,))
    samples: list[tuple[float, int, int]] = []
    # This process stands in for a server, which freezes its start-up objects once up
    # (app/main.py): without it, full collections re-scan them (7 % of the sync's time).
    gc.freeze()
    started = time.perf_counter()
    await runner.start()
    stored = 0
    try:
        while stored < expected:
            await asyncio.sleep(0.5)
            async with runtime.db.read_session() as session:
                stored = await session.scalar(
                    select(func.count()).select_from(Message).where(Message.inbox_id == inbox_id)) or 0
            samples.append((time.perf_counter() - started, stored, _rss_kb()))
            if time.perf_counter() - started > 3600:
                raise TimeoutError(f"only {stored} of {expected} messages after an hour")
        elapsed = time.perf_counter() - started
    finally:
        await runner.stop()
        await runtime.db.dispose()
    if database == "sqlite":
        _common.drop_sqlite(url)
    return {"stored": stored, "seconds": round(elapsed, 2), "msg_per_s": round(stored / elapsed, 1),
            "rss_mb_samples": [(round(t, 1), n, round(kb / 1024, 1)) for t, n, kb in samples[:: max(1, len(samples) // 12)]],
            "rss_mb_max_sampled": round(max(kb for _, _, kb in samples) / 1024, 1)}


def _one(conversations: int, messages: int, database: str, *, sync_too: bool) -> dict[str, Any]:
    url = _common.fresh_database(database, "postroom_bench_marketplace") if sync_too else ""  # blocking
    process, channel = _start_sandbox(conversations, messages)
    try:
        count, seconds = asyncio.run(_baseline(channel))
        rss_after_baseline = _rss_kb()
        sync = asyncio.run(_sync(database, url, channel, conversations * messages)) if sync_too else None
    finally:
        process.terminate()
        process.wait(timeout=10)
    return {
        "conversations": conversations, "messages": conversations * messages, "database": database,
        "baseline": {"messages": count, "seconds": round(seconds, 2), "msg_per_s": round(count / seconds, 1),
                     "rss_mb_after": round(rss_after_baseline / 1024, 1)},
        "sync": sync,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=10, help="messages per conversation")
    parser.add_argument("--sizes", default="1000", help="smaller shops measured first, for the memory comparison")
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--connector-only", action="store_true",
                        help="measure the baseline (connector walk, nothing stored) only")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one(args.one, args.messages, args.database, sync_too=not args.connector_only)))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()] + [args.conversations]
    results = []
    for size in sizes:
        command = [sys.executable, __file__, "--one", str(size), "--messages", str(args.messages),
                   "--database", args.database] + (["--connector-only"] if args.connector_only else [])
        child = subprocess.run(command, capture_output=True, text=True, cwd=_common.ROOT)
        if child.returncode != 0:
            print(child.stderr[-3000:], file=sys.stderr)
            raise SystemExit(child.returncode)
        result = json.loads(child.stdout.strip().splitlines()[-1])
        results.append(result)
        sync, base = result["sync"], result["baseline"]
        synced = f"sync {sync['msg_per_s']:>7.1f} msg/s ({sync['seconds']} s), " if sync else ""
        print(f"{size:>6} conversations, {result['messages']:>7} messages, {args.database}: {synced}"
              f"baseline (connector only) {base['msg_per_s']:>7.1f} msg/s ({base['seconds']} s), "
              f"peak RSS {result['peak_rss_mb']} MB", flush=True)
        path = _common.save_results("marketplace_sync", {"machine": _common.machine(), "results": results})
    if results[-1]["sync"]:
        largest = results[-1]["sync"]["msg_per_s"]
        print(f"target >= {TARGET:.0f} msg/s: {'met' if largest >= TARGET else 'not met'} ({largest:.0f})")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
