"""Helpers shared by the benchmark scripts (fresh databases, statistics, output)."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.config import normalize_database_url  # noqa: E402
from app.migrate import upgrade  # noqa: E402

#: The PostgreSQL server (trust auth); benchmark databases are created on it.
PG_SERVER = os.environ.get("POSTROOM_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
RESULTS = ROOT / "bench" / "results"


async def _recreate_pg(name: str) -> str:
    import asyncpg

    admin = await asyncpg.connect(PG_SERVER)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return PG_SERVER.rsplit("/", 1)[0] + "/" + name


def fresh_database(kind: str, name: str = "postroom_bench") -> str:
    """A new, migrated database: a new SQLite file or a dropped and re-created PG one.

    Returns the async SQLAlchemy URL. Blocking (Alembic runs its own event loop).
    """
    if kind == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="postroom-bench-"))
        url = normalize_database_url(f"sqlite:///{folder / 'bench.db'}")
    elif kind == "postgresql":
        url = normalize_database_url(asyncio.run(_recreate_pg(name)))
    else:
        raise ValueError(kind)
    upgrade(url)
    return url


def drop_sqlite(url: str) -> None:
    """Remove a SQLite benchmark file and its WAL."""
    path = Path(url.split(":///", 1)[1])
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:
        pass


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest-rank on the sorted values)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in load],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def save_results(name: str, body: dict[str, Any]) -> Path:
    """Write the figures as JSON under bench/results/ (git-ignored)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(body, indent=2, default=str))
    return path
