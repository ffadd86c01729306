"""Retry delays: a schedule with jitter, never shorter than what the platform asked for."""

from __future__ import annotations

import random
from collections.abc import Sequence


def retry_delay(failures: int, schedule: Sequence[float], retry_after: float | None = None) -> float:
    """Seconds to wait after the ``failures``-th error in a row (1-based).

    The schedule's step is jittered by ±20 % so that many inboxes failing together do not
    retry together; a platform's ``retry_after`` is a floor, never shortened by the jitter.
    """
    steps = list(schedule) or [30.0]
    base = steps[min(max(failures, 1) - 1, len(steps) - 1)]
    delay = base * random.uniform(0.8, 1.2)
    if retry_after is not None:
        delay = max(delay, retry_after + random.uniform(0.0, 0.25))
    return delay
