"""Running the connector runner inside a test: one set-up for every channel's tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from app.runner import ConnectorRunner

#: Runner settings that make tests quick: frequent scans, short leases and backoffs.
FAST_RUNNER = {"connector_scan_seconds": 0.2, "connector_lease_seconds": 3.0, "connector_backoff": "0.2,0.4,0.8"}


@asynccontextmanager
async def running(runtime: Any, *inbox_ids: int, **overrides: Any) -> AsyncIterator[ConnectorRunner]:
    """A connector runner in this process, limited to the test's inboxes (``overrides``:
    runner settings besides :data:`FAST_RUNNER`)."""
    settings = runtime.settings.model_copy(update={**FAST_RUNNER, **overrides})
    runner = ConnectorRunner(runtime.db, runtime.store, runtime.box, settings, only=inbox_ids)
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0, *, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s (last: {value!r})")
        await asyncio.sleep(every)
