"""Waiting for a wake-up with a time limit, in loops that are stopped by cancellation."""

from __future__ import annotations

import asyncio


async def wake_or_timeout(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` have passed; True when it was set.

    ``asyncio.timeout``, not ``wait_for``: Python 3.11's ``wait_for`` drops a cancellation
    that arrives just as the event is set, so a background loop stopped at that moment
    went on (the stream hub's stop then waited for its next period).
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
