"""A parser that hangs on a marked mail, for the parser pool's tests.

A module of its own, importing little: the parser's worker imports it (to unpickle the
function) inside the job's time limit, and a test module would import the whole app.
"""

from __future__ import annotations

import time
from typing import Any

SLOW_MARK = b"X-Test-Parse: forever"


def parse_many_or_hang(raws: list[bytes], *args: Any) -> list[Any]:
    """``connectors.email.connector.parse_many``, but hangs (a runaway parse, made
    certain) on a mail carrying ``SLOW_MARK``."""
    from connectors.email.connector import parse_many

    if any(SLOW_MARK in raw for raw in raws):
        while True:
            time.sleep(0.05)
    return parse_many(raws, *args)
