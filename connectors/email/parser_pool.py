"""Mail parsing in worker processes, with a time limit that really stops a mail.

Parsing is about a third of the CPU an ingested mail costs. In a thread of the server's
own process it competed for the interpreter with the event loop and the database driver,
so fetching, parsing and storing took turns instead of running side by side; in worker
processes the other cores parse while the server stores. And a mail that makes the parser
run away is stopped for real: its worker is killed and replaced (a thread can only be
abandoned, and burns its core until the process ends).

``POSTROOM_MAIL_PARSERS`` sets how many worker processes parse (default: one less than
the cores, at least one). Workers start on first use, spawned (the server's threads are
not forked), and stop with the server. At most that many jobs are handed out at a time,
so a job's time limit counts its own parsing, not its wait behind another inbox's.

Killing a runaway job kills the pool's other workers too (the executor cannot stop one
job alone); their jobs end with :class:`ParserGone`, and ``parse_batch`` parses those
mails again one by one, so only the runaway mail is quarantined.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")


class ParserGone(RuntimeError):
    """The job ran past its time limit (its worker was killed), or its worker died."""


def workers_wanted() -> int:
    """Worker processes to start (``POSTROOM_MAIL_PARSERS``, else cores - 1, at least 1)."""
    configured = os.environ.get("POSTROOM_MAIL_PARSERS", "").strip()
    if configured:
        return max(1, int(configured))
    return max(1, (os.cpu_count() or 2) - 1)


def _in_worker() -> None:
    """A worker leaves Ctrl-C to the server, which stops it (else every worker printed
    its own ``KeyboardInterrupt``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _warm_up() -> bool:
    import connectors.email.connector  # noqa: F401  (parse_many's module: imported before any limit runs)

    return True


class ParserPool:
    """Worker processes that run picklable functions, each call under a time limit."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or workers_wanted()
        self._executor: ProcessPoolExecutor | None = None
        self._starting: asyncio.Future[None] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, timeout: float, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in a worker; :class:`ParserGone` when it takes longer than
        ``timeout`` seconds (the worker is killed) or its worker dies."""
        slots = self._slots_for_this_loop()
        async with slots:
            executor = await self._ready()
            try:
                async with asyncio.timeout(timeout):
                    # Submitting raises too when a worker died since the last job.
                    return await asyncio.get_running_loop().run_in_executor(executor, function, *args)
            except TimeoutError:
                self._discard(executor)
                raise ParserGone(f"parsing took longer than {timeout:g}s") from None
            except BrokenProcessPool:
                self._discard(executor)
                raise ParserGone("the parser's worker process died") from None

    async def start(self) -> None:
        """Start the workers now (else the first :meth:`run` starts them)."""
        async with self._slots_for_this_loop():
            await self._ready()

    def close(self) -> None:
        """Stop the workers (a later :meth:`run` starts new ones)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _slots_for_this_loop(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            self._slots, self._loop, self._starting = asyncio.Semaphore(self.workers), loop, None
        return self._slots

    async def _ready(self) -> ProcessPoolExecutor:
        """The executor, its workers started and their imports done (outside any limit)."""
        if self._executor is None:
            self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_in_worker)
            executor = self._executor
            loop = asyncio.get_running_loop()
            self._starting = asyncio.gather(*(loop.run_in_executor(executor, _warm_up) for _ in range(self.workers)))
        executor = self._executor
        if self._starting is not None:
            try:
                await asyncio.shield(self._starting)
            except BrokenProcessPool:
                self._discard(executor)
                raise ParserGone("the parser's worker process could not start") from None
            self._starting = None
        return executor

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        """Kill the workers of ``executor`` (a job may run away in one) and forget it.

        ``ProcessPoolExecutor`` has no public way to stop a running job before Python
        3.14 (``terminate_workers``); its process table is the one handle there is.
        """
        for process in list(getattr(executor, "_processes", {}).values()):
            process.kill()
        executor.shutdown(wait=False, cancel_futures=True)
        if self._executor is executor:
            self._executor, self._starting = None, None


#: The process's pool (the server's e-mail connectors and SMTP receiver share it).
POOL = ParserPool()
