"""Realtime fan-out: events/s x websocket clients, commit-to-receipt latency, losses, RSS.

    .venv/bin/python bench/fanout.py --wait-for-others 3600      # both scenarios, 3 runs each
    .venv/bin/python bench/fanout.py --scenario 1 --clients 100 --steps 10,20 --runs 1
    .venv/bin/python bench/fanout.py --scenario 2 --brokers redis --steps2 10 --runs 1
    .venv/bin/python bench/fanout.py --scenario 2 --notify-only                 # write cost of the wake-up
    .venv/bin/python bench/fanout.py --scenario 1 --only postroom --server-ws websockets-sansio   # what-if

Scenario 1 - ONE ``postroom serve`` process (SQLite file, ``memory://`` broker) and
``--clients`` websocket clients (default 1,000, all the same administrator's token, so
every event goes to every client; ``POSTROOM_STREAM_MAX_CONNECTIONS_PER_USER`` is raised
for it) spread over ``--client-procs`` client processes (default 2) using the
``websockets`` client library with its defaults (it offers permessage-deflate, as
browsers do; ``--no-compression`` to not). The event rate is raised step by step
(``--steps``, events/s, each held ``--step-seconds``). The server itself produces the
events: the orchestrator POSTs agent replies (one ``message.created`` event each) through
the REST API at the step's rate. Then, in the same run, the baseline: a bare
``websockets`` server (``websockets.asyncio.server`` + ``websockets.broadcast``, uvloop,
its default permessage-deflate) broadcasting pre-encoded frames of the same size (the
mean frame size our run delivered) at the same steps to the same clients.

Scenario 2 - TWO server processes on one PostgreSQL database, with the PostgreSQL
LISTEN/NOTIFY broker and then with Redis; the clients split over both processes; the
producer is ``app.tickets.ingest.ingest_messages`` in the orchestrator process (one
message per transaction, into pre-seeded conversations: one event per message), which
publishes the broker wake-up after each commit exactly as a server's hub does. Before
the clients connect it measures the write-throughput cost of that after-commit publish
(ingest msgs/s, 1 and 4 concurrent writers, without and with the publish, alternating):
first with no server listening, then with the two idle servers listening.

For every step: latency p50/p99/max from commit to receipt (client receipt time minus
the event row's ``created_at``, stamped inside the writing transaction, before its
commit, so slightly over-stated; same machine clock), the same from just before the write (``e2e``, which also
includes the POST or ingest call and its queueing), lost events (every client must
receive every seq of the step: missing seqs per client, summed), out-of-order and
duplicate frames, clients closed by the server, deliveries/s (frames received / step
time), server RSS (max VmRSS sampled every 0.25 s) and the CPU used by the server(s),
the client processes, the producer, PostgreSQL/Redis, other people's processes
(``foreign``) and the whole machine (% of 2 cores). A step passes with p99 <=
``--p99-ms`` (50 ms scenario 1, 100 ms scenario 2), 0 lost, 0 out of order, 0
duplicates, 0 closed and the producer reaching >= 95% of the rate. The best sustained
rate is the highest passing step's deliveries/s. Escalation stops after
``--stop-after-fails`` (2) failing steps in a row, or a step that lost events or had p99
over 10x the limit. The machine is shared: before each step the script waits for other
processes to go quiet (and for bench/ingest.py or bench/list.py to finish, with
``--wait-for-others``), and a step during which they used more than ``--foreign-max``
% of a core is measured again (``--retry-contended`` times).

What-ifs (measurement only, no app change): ``--server-ws websockets`` (or ``wsproto``,
``websockets-sansio``) runs the same app under that uvicorn websocket implementation, with
uvicorn's defaults (permessage-deflate accepted), instead of ``app.cli serve``; frames then
take ``send_text``, not the hub's direct writes (docs/realtime.md), except under
``websockets-sansio`` with ``--no-compression``. With ``--server-ws``,
``FANOUT_GC_STATS=1`` logs the server's garbage-collection pauses and
``FANOUT_GC_FREEZE_AFTER=<s>`` calls ``gc.freeze()`` that long after start-up (``--keep``
keeps the logs).

Every process started here is stopped on exit (and gets SIGTERM if this one dies);
``--max-minutes`` bounds the whole run. Loopback only. Figures go to stdout and
bench/results/fanout-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (puts the project root on sys.path)

ROOT = _common.ROOT
PY = sys.executable
SECRET = "fanout-bench-secret"
PAD_WORDS = "thanks for waiting, your parcel left the warehouse this morning and should arrive tomorrow "
REDIS_URL = os.environ.get("POSTROOM_BENCH_REDIS", "redis://127.0.0.1:6379/0")
PG_DB_NAME = "postroom_fanout"


def _pdeathsig() -> None:  # runs in the child before exec: die with the parent
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setpgrp()  # own process group: a ^C in the terminal reaches only this script


def _use_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def _reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


# ============================================================================ client role


class Conn:
    __slots__ = ("ws", "seqs", "times", "last", "close_code", "frames", "nbytes", "task")

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seqs: list[int] = []
        self.times: list[float] = []
        self.last = 0
        self.close_code: int | None = None
        self.frames = 0
        self.nbytes = 0
        self.task: asyncio.Task[None] | None = None


async def client_main() -> None:
    """Holds N websocket connections; answers the orchestrator's commands on stdin."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    loads = json.loads
    conns: list[Conn] = []
    latencies: dict[str, list[float]] = {}
    failures: list[str] = []

    async def receive(conn: Conn) -> None:
        ws = conn.ws
        try:
            async for raw in ws:
                now = time.time()
                frame = loads(raw)
                seq = frame["seq"]
                if seq is None:
                    continue
                conn.seqs.append(seq)
                conn.times.append(now)
                if seq > conn.last:
                    conn.last = seq
                conn.frames += 1
                conn.nbytes += len(raw)
                content = frame["data"].get("content")
                if content and content[:3] == "fb|":
                    _, tag, stamp, _ = content.split("|", 3)
                    bucket = latencies.get(tag)
                    if bucket is None:
                        bucket = latencies[tag] = []
                    bucket.append(now - float(stamp))
        except ConnectionClosed:
            pass
        finally:
            conn.close_code = ws.close_code if ws.close_code is not None else 1006

    async def open_one(url: str, headers: dict[str, str], compression: str | None, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                ws = await connect(url, additional_headers=headers, open_timeout=60, ping_interval=None,
                                   compression=compression, max_size=None)
            except Exception as exc:  # noqa: BLE001
                failures.append(repr(exc))
                return
            conn = Conn(ws)
            conn.task = asyncio.create_task(receive(conn))
            conns.append(conn)

    reader = await _stdin_reader()
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        op = cmd["cmd"]
        if op == "connect":
            gate = asyncio.Semaphore(cmd.get("concurrency", 50))
            compression = cmd.get("compression", "deflate")
            await asyncio.gather(*(open_one(cmd["url"], cmd.get("headers", {}), compression, gate)
                                   for _ in range(cmd["n"])))
            await asyncio.sleep(0.5)  # let the server register them and send its greetings
            gc.collect()  # the clients are the measuring instrument: keep their own collector pauses short
            gc.freeze()
            _reply({"connected": sum(1 for c in conns if c.close_code is None), "failed": len(failures),
                    "errors": failures[:3]})
        elif op == "wait":
            hi, deadline = cmd["hi"], time.monotonic() + cmd.get("timeout", 20)
            while time.monotonic() < deadline:
                if all(c.last >= hi or c.close_code is not None for c in conns):
                    break
                await asyncio.sleep(0.02)
            _reply({"behind": sum(1 for c in conns if c.last < hi and c.close_code is None)})
        elif op == "report":
            lo, hi = cmd["lo"], cmd["hi"]
            created = dict(cmd["created"]) if "created" in cmd else None
            expected = set(created) if created is not None else set(range(lo + 1, hi + 1))
            lost = ooo = dup = received = nbytes = frames = 0
            commit_hist: Counter[int] = Counter()
            for c in conns:
                window = [s for s in c.seqs if lo < s <= hi]
                if created is not None:
                    commit_hist.update(max(0, int((t - created[s]) * 10_000))
                                       for s, t in zip(c.seqs, c.times, strict=True) if s in created)
                keep = [(s, t) for s, t in zip(c.seqs, c.times, strict=True) if s > hi]
                c.seqs = [s for s, _ in keep]
                c.times = [t for _, t in keep]
                received += len(window)
                got = set(window)
                lost += len(expected - got)
                dup += len(window) - len(got)
                ooo += sum(1 for a, b in zip(window, window[1:], strict=False) if b < a)
                frames += c.frames
                nbytes += c.nbytes
                c.frames = c.nbytes = 0
            lats = latencies.pop(cmd["tag"], [])
            hist = Counter(max(0, int(x * 10_000)) for x in lats)  # 0.1 ms buckets
            closed = Counter(str(c.close_code) for c in conns if c.close_code is not None)
            _reply({"received": received, "lost": lost, "out_of_order": ooo, "duplicates": dup,
                    "hist": sorted((commit_hist if created is not None else hist).items()),
                    "e2e_hist": sorted(hist.items()), "closed": dict(closed), "frames": frames, "bytes": nbytes,
                    "open": sum(1 for c in conns if c.close_code is None)})
        elif op == "quit":
            break
    for c in conns:
        if c.task is not None:
            c.task.cancel()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(10):
            await asyncio.gather(*(c.ws.close() for c in conns), return_exceptions=True)
    _reply({"bye": True})


# =================================================================== baseline server role


async def baseline_server_main(port: int, compression: str | None) -> None:
    """A bare websockets server: broadcast pre-encoded frames at a rate, on command."""
    from websockets.asyncio.server import broadcast, serve

    clients: set[Any] = set()

    async def handler(ws: Any) -> None:
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    seq = 0
    async with serve(handler, "127.0.0.1", port, compression=compression, max_size=None):
        _reply({"ready": True})
        reader = await _stdin_reader()
        loop = asyncio.get_running_loop()
        while True:
            line = await reader.readline()
            if not line:
                break
            cmd = json.loads(line)
            if cmd["cmd"] == "count":
                _reply({"clients": len(clients)})
            elif cmd["cmd"] == "step":
                rate, seconds, size, tag = cmd["rate"], cmd["seconds"], cmd["size"], cmd["tag"]
                n = max(1, round(rate * seconds))
                lo = seq
                start = loop.time()
                for i in range(n):
                    delay = start + i / rate - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    seq += 1
                    head = f'{{"seq":{seq},"event":"message.created","data":{{"content":"fb|{tag}|{time.time():.6f}|'
                    tail = '"}}'
                    pad = max(0, size - len(head) - len(tail))
                    frame = head + (PAD_WORDS * (pad // len(PAD_WORDS) + 1))[:pad] + tail
                    broadcast(clients, frame)  # encoded once, written to every connection
                _reply({"lo": lo, "hi": seq, "sent": n, "duration": loop.time() - start})
            elif cmd["cmd"] == "quit":
                break
    _reply({"bye": True})


# ============================================================================ orchestrator


@dataclass
class Proc:
    name: str
    process: asyncio.subprocess.Process
    log: Any = None

    @property
    def pid(self) -> int:
        return self.process.pid

    async def ask(self, cmd: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.name} (pid {self.pid}) exited with {self.process.returncode}")
        return json.loads(line)


class Processes:
    """Every child this script starts; all stopped on exit, whatever happens."""

    def __init__(self) -> None:
        self.children: list[Proc] = []

    async def spawn(self, name: str, argv: list[str], *, env: dict[str, str] | None = None,
                    control: bool = False, log_path: Path | None = None) -> Proc:
        log = open(log_path, "ab") if log_path else None  # noqa: SIM115 - closed in stop()
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env=env or os.environ.copy(), preexec_fn=_pdeathsig, limit=1 << 26,
            stdin=asyncio.subprocess.PIPE if control else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if control else (log or asyncio.subprocess.DEVNULL),
            stderr=log or None,
        )
        proc = Proc(name, process, log)
        self.children.append(proc)
        return proc

    async def stop(self, proc: Proc, *, quit_cmd: bool = False) -> None:
        if proc.process.returncode is None:
            if quit_cmd:
                with contextlib.suppress(Exception):
                    await proc.ask({"cmd": "quit"}, timeout=20)
            if proc.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.process.terminate()
            try:
                await asyncio.wait_for(proc.process.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.process.kill()
                await proc.process.wait()
        if proc.log:
            proc.log.close()
        if proc in self.children:
            self.children.remove(proc)

    async def stop_all(self) -> None:
        for proc in list(reversed(self.children)):
            with contextlib.suppress(Exception):
                await self.stop(proc)


PROCS = Processes()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def all_cpu() -> dict[int, tuple[str, float]]:
    """Every process's (command name, CPU seconds)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1: raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        out[int(entry.name)] = (comm, (int(fields[11]) + int(fields[12])) / tick)
    return out


def machine_busy() -> tuple[float, float]:
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


class Monitor:
    """RSS of the servers (sampled) and CPU of everything between start() and stop()."""

    def __init__(self, servers: list[int], clients: list[int]) -> None:
        self.servers, self.clients = servers, clients
        self.rss_max = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.rss_max = max(self.rss_max, sum(rss_mb(p) for p in self.servers))
            await asyncio.sleep(0.25)

    def start(self) -> None:
        self.rss_max = sum(rss_mb(p) for p in self.servers)
        self._all0 = all_cpu()
        self._cpu0 = self._cpu()
        self._t0 = time.monotonic()
        self._task = asyncio.create_task(self._sample())

    def _cpu(self) -> tuple[float, float, float, tuple[float, float]]:
        return (sum(cpu_seconds(p) for p in self.servers), sum(cpu_seconds(p) for p in self.clients),
                cpu_seconds(os.getpid()), machine_busy())

    def stop(self) -> dict[str, float]:
        if self._task:
            self._task.cancel()
        wall = time.monotonic() - self._t0
        s1, c1, o1, (b1, t1) = self._cpu()
        s0, c0, o0, (b0, t0) = self._cpu0
        ours = {os.getpid(), *self.servers, *self.clients}
        db = foreign = 0.0
        for pid, (comm, cpu) in all_cpu().items():
            if pid in ours:
                continue
            delta = cpu - self._all0.get(pid, (comm, 0.0))[1]
            if comm.startswith(("postgres", "redis")):
                db += delta
            else:
                foreign += delta
        return {
            "cpu_db_pct": round(100 * db / wall, 1),
            "cpu_foreign_pct": round(100 * foreign / wall, 1),
            "rss_mb": round(max(self.rss_max, sum(rss_mb(p) for p in self.servers)), 1),
            "cpu_server_pct": round(100 * (s1 - s0) / wall, 1),
            "cpu_clients_pct": round(100 * (c1 - c0) / wall, 1),
            "cpu_producer_pct": round(100 * (o1 - o0) / wall, 1),
            "machine_busy_pct": round(100 * (b1 - b0) / max(1, t1 - t0), 1),
        }


def latency_summary(hist: Counter[int]) -> dict[str, float]:
    total = sum(hist.values())
    if not total:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan"), "samples": 0}
    out: dict[str, float] = {"samples": total}
    for name, p in (("p50_ms", 50), ("p99_ms", 99)):
        rank = max(1, min(total, round(p / 100 * total + 0.5)))
        seen = 0
        for bucket in sorted(hist):
            seen += hist[bucket]
            if seen >= rank:
                out[name] = round(bucket / 10, 1)
                break
    out["max_ms"] = round(max(hist) / 10, 1)
    return out


async def start_clients(n: int, procs: int, targets: list[str], headers: dict[str, str],
                        compression: str | None) -> list[Proc]:
    """``procs`` client processes, connection i of them to ``targets[proc % len]``."""
    started = [await PROCS.spawn(f"clients-{i}", [PY, __file__, "--role", "client"], control=True)
               for i in range(procs)]
    shares = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    answers = await asyncio.gather(*(
        p.ask({"cmd": "connect", "url": targets[i % len(targets)], "n": shares[i], "headers": headers,
               "compression": compression}, timeout=300)
        for i, p in enumerate(started)))
    connected = sum(a["connected"] for a in answers)
    if connected != n:
        raise RuntimeError(f"only {connected} of {n} clients connected: {answers}")
    return started


async def drain(clients: list[Proc], hi: int, drain_timeout: float) -> None:
    """Wait until every client has seen ``hi`` (or is closed), at most ``drain_timeout``."""
    await asyncio.gather(*(c.ask({"cmd": "wait", "hi": hi, "timeout": drain_timeout}, timeout=drain_timeout + 30)
                           for c in clients))


async def collect(clients: list[Proc], tag: str, lo: int, hi: int, created: list[list[float]] | None) -> dict[str, Any]:
    """The step's figures from every client process, merged."""
    cmd: dict[str, Any] = {"cmd": "report", "tag": tag, "lo": lo, "hi": hi}
    if created is not None:
        cmd["created"] = created
    reports = await asyncio.gather(*(c.ask(cmd, timeout=120) for c in clients))
    hist: Counter[int] = Counter()
    e2e: Counter[int] = Counter()
    closed: Counter[str] = Counter()
    for r in reports:
        hist.update({int(k): v for k, v in r["hist"]})
        e2e.update({int(k): v for k, v in r["e2e_hist"]})
        closed.update(r["closed"])
    e2e_summary = latency_summary(e2e)
    frames = sum(r["frames"] for r in reports)
    return {
        "received": sum(r["received"] for r in reports),
        "lost": sum(r["lost"] for r in reports),
        "out_of_order": sum(r["out_of_order"] for r in reports),
        "duplicates": sum(r["duplicates"] for r in reports),
        "closed": dict(closed),
        "open": sum(r["open"] for r in reports),
        "mean_frame_bytes": round(sum(r["bytes"] for r in reports) / frames) if frames else 0,
        **latency_summary(hist),
        "e2e_p50_ms": e2e_summary["p50_ms"], "e2e_p99_ms": e2e_summary["p99_ms"],
    }


async def wait_quiet(args: argparse.Namespace) -> float:
    """Wait (at most ``--quiet-wait`` s) until other people's processes use < ``--foreign-max`` % of a
    core over a second; returns the last reading."""
    if args.wait_for_others:  # never measure while bench/ingest.py or bench/list.py runs
        until = time.monotonic() + args.wait_for_others
        if (others := other_benchmarks()):
            print(f"  waiting for other benchmarks to finish: {others}", flush=True)
        while other_benchmarks() and time.monotonic() < until:
            await asyncio.sleep(10)
    deadline = time.monotonic() + args.quiet_wait
    while True:
        before, t0 = all_cpu(), time.monotonic()
        await asyncio.sleep(1.0)
        after, wall = all_cpu(), time.monotonic() - t0
        ours = {os.getpid(), *(p.pid for p in PROCS.children)}
        busy = sum(cpu - before[pid][1] for pid, (_, cpu) in after.items() if pid in before and pid not in ours)
        pct = 100 * busy / wall
        if pct < args.foreign_max or time.monotonic() > deadline:
            return pct
        await asyncio.sleep(2.0)


def judge(row: dict[str, Any], rate: float, p99_limit: float) -> bool:
    ok = (row["events"] > 0 and row["p99_ms"] <= p99_limit and row["lost"] == 0 and row["out_of_order"] == 0
          and row["duplicates"] == 0 and not row["closed"] and row["events_per_s"] >= 0.95 * rate)
    row["pass"] = ok
    return ok


def should_stop(rows: list[dict[str, Any]], p99_limit: float, fails: int = 2) -> bool:
    """After ``fails`` failing steps in a row, or one that lost events or had p99 > 10x the limit."""
    last = rows[-1]
    if last["pass"]:
        return False
    if last["lost"] or last["closed"] or not (last["p99_ms"] <= 10 * p99_limit):
        return True
    return len(rows) >= fails and not any(r["pass"] for r in rows[-fails:])


def print_row(label: str, row: dict[str, Any]) -> None:
    print(f"  {label:<9} {row['rate']:>5} ev/s  got {row['events_per_s']:7.1f} ev/s  "
          f"{row['deliveries_per_s']:9.0f} deliv/s  p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms  "
          f"max {row['max_ms']:7.1f}  lost {row['lost']}  ooo {row['out_of_order']}  dup {row['duplicates']}  "
          f"closed {row['closed'] or 0}  write p50 {row.get('write_p50_ms', float('nan')):5.1f} ms  "
          f"e2e p99 {row['e2e_p99_ms']:6.1f} ms  "
          f"rss {row['rss_mb']:6.1f} MB  cpu srv {row['cpu_server_pct']:5.1f}% cli {row['cpu_clients_pct']:5.1f}% "
          f"prod {row['cpu_producer_pct']:4.1f}% db {row['cpu_db_pct']:4.1f}% foreign {row['cpu_foreign_pct']:5.1f}% "
          f"machine {row['machine_busy_pct']:5.1f}%  "
          f"{'PASS' if row['pass'] else 'fail'}{'  (contended)' if row.get('contended') else ''}", flush=True)


# ---------------------------------------------------------------------- postroom helpers


def server_env(database_url: str, data_dir: Path, broker_url: str, args: argparse.Namespace) -> dict[str, str]:
    env = {
        **os.environ,
        "POSTROOM_DATABASE_URL": database_url,
        "POSTROOM_DATA_DIR": str(data_dir),
        "POSTROOM_SECRET_KEY": SECRET,
        "POSTROOM_BROKER_URL": broker_url,
        "POSTROOM_STREAM_MAX_CONNECTIONS_PER_USER": "100000",
        "POSTROOM_STREAM_IDLE_TIMEOUT_SECONDS": "3600",
        "POSTROOM_LOG_LEVEL": "WARNING",
    }
    if args.queue_size:
        env["POSTROOM_STREAM_QUEUE_SIZE"] = str(args.queue_size)
    if args.catch_up:
        env["POSTROOM_STREAM_CATCH_UP_SECONDS"] = str(args.catch_up)
    return env


async def create_admin(env: dict[str, str]) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        PY, "-m", "app.cli", "admin", "create", "--email", "bench@example.com", "--name", "Bench",
        "--password", "bench-password-1", "--account", "Fanout", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, preexec_fn=_pdeathsig)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    if process.returncode:
        raise RuntimeError(f"admin create failed: {err.decode()[-2000:]}")
    return json.loads(out.decode().strip().splitlines()[-1])


async def seed(database_url: str, account_id: int, contacts: int) -> int:
    """An API inbox and ``contacts`` open conversations on it; returns the inbox id."""
    from app.auth.secrets_box import SecretsBox
    from app.db import Database
    from app.tickets.inboxes import create_inbox
    from app.tickets.ingest import ingest_messages
    from connectors.base import InboundMessage, SenderIdentity

    db = Database(database_url)
    try:
        async with db.write_session() as session:
            inbox = await create_inbox(session, SecretsBox(SECRET.encode()), account_id, name="Bench API",
                                       channel={"type": "api"})
        await ingest_messages(db, [
            InboundMessage(inbox_id=inbox.id, source_id=f"seed-{i}", sender=SenderIdentity(source_id=f"customer-{i}"),
                           text="hello, where is my order?")
            for i in range(contacts)])
        return inbox.id
    finally:
        await db.dispose()


SERVER_WS = "cli"  # set from --server-ws


def app_server_main(port: int, ws: str) -> None:
    """What-if only: ``postroom serve`` with another uvicorn websocket implementation."""
    import uvicorn

    from app.config import get_settings
    from app.logs import configure_logging
    from app.main import create_app

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    if os.environ.get("FANOUT_GC_STATS"):  # what-if instrumentation: garbage-collection pauses, to stderr
        import threading

        pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        started = [0.0]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                pauses[info["generation"]].append(time.perf_counter() - started[0])

        gc.callbacks.append(on_gc)

        def report() -> None:
            while True:
                time.sleep(5)
                line = {g: (len(v), round(1000 * max(v, default=0), 1), round(1000 * sum(v), 1)) for g, v in pauses.items()}
                for v in pauses.values():
                    v.clear()
                print(f"gc per 5 s (count, max ms, total ms) by generation: {line} objects {len(gc.get_objects())}",
                      file=sys.stderr, flush=True)

        threading.Thread(target=report, daemon=True).start()
    if os.environ.get("FANOUT_GC_FREEZE_AFTER"):  # what-if: move everything alive then out of the collector's way
        import threading

        def freeze() -> None:
            time.sleep(float(os.environ["FANOUT_GC_FREEZE_AFTER"]))
            gc.freeze()
            print(f"gc.freeze(): {gc.get_freeze_count()} objects frozen", file=sys.stderr, flush=True)

        threading.Thread(target=freeze, daemon=True).start()
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_config=None, proxy_headers=True, ws=ws)


async def start_server(name: str, env: dict[str, str], log_dir: Path) -> tuple[Proc, int]:
    import httpx

    port = free_port()
    argv = ([PY, "-m", "app.cli", "serve", "--port", str(port)] if SERVER_WS == "cli" else
            [PY, __file__, "--role", "app-server", "--port", str(port), "--server-ws", SERVER_WS])
    proc = await PROCS.spawn(name, argv, env=env, log_path=log_dir / f"{name}.log")
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if proc.process.returncode is not None:
                raise RuntimeError(f"{name} exited; see {log_dir / (name + '.log')}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"http://127.0.0.1:{port}/healthz", timeout=1)).status_code < 500:
                    return proc, port
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{name} did not start")


class SeqReader:
    def __init__(self, database_url: str) -> None:
        from app.db import Database

        self.db = Database(database_url)

    async def max_seq(self) -> int:
        from sqlalchemy import func, select

        from app.models import Event

        async with self.db.read_session() as session:
            return int(await session.scalar(select(func.max(Event.seq))) or 0)

    async def created(self, lo: int, hi: int) -> list[list[float]]:
        """[seq, created_at as a unix time] of the events in (lo, hi]: the moment the event row was
        made, inside the writing transaction just before its commit."""
        from sqlalchemy import select

        from app.models import Event

        async with self.db.read_session() as session:
            rows = (await session.execute(select(Event.seq, Event.created_at)
                                          .where(Event.seq > lo, Event.seq <= hi).order_by(Event.seq))).all()
        return [[seq, created.timestamp()] for seq, created in rows]


async def paced(rate: float, seconds: float, fire: Any) -> float:
    """Call ``fire(i)`` at ``rate`` per second for ``seconds``; returns the time taken."""
    loop = asyncio.get_running_loop()
    n = max(1, round(rate * seconds))
    start = loop.time()
    for i in range(n):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        fire(i)
    return loop.time() - start


class RestProducer:
    """Agent replies through the REST API (the server commits and dispatches them)."""

    def __init__(self, bases: list[str], account_id: int, token: str, display_ids: list[int], content_len: int):
        import httpx

        self.clients = [httpx.AsyncClient(base_url=b, headers={"api_access_token": token}, timeout=60,
                                          limits=httpx.Limits(max_connections=64)) for b in bases]
        self.account_id, self.display_ids, self.content_len = account_id, display_ids, content_len

    async def step(self, tag: str, rate: float, seconds: float) -> dict[str, Any]:
        tasks: list[asyncio.Task[None]] = []
        writes: list[float] = []
        errors = 0
        pad = (PAD_WORDS * (self.content_len // len(PAD_WORDS) + 1))[: self.content_len]

        async def post(i: int) -> None:
            nonlocal errors
            http = self.clients[i % len(self.clients)]
            number = self.display_ids[i % len(self.display_ids)]
            stamp = time.time()
            try:
                r = await http.post(f"/api/v1/accounts/{self.account_id}/conversations/{number}/messages",
                                    json={"content": f"fb|{tag}|{stamp:.6f}|{pad}"})
                if r.status_code != 200:
                    errors += 1
            except Exception:  # noqa: BLE001
                errors += 1
            writes.append(time.time() - stamp)

        start = time.monotonic()
        await paced(rate, seconds, lambda i: tasks.append(asyncio.create_task(post(i))))
        await asyncio.gather(*tasks)
        return {"duration": time.monotonic() - start, "errors": errors, "writes": writes}

    async def close(self) -> None:
        for c in self.clients:
            await c.aclose()


def wake_hook(broker: Any) -> Any:
    """What a server's hub does after a commit: publish a wake-up with the last seq."""
    from app.events.log import LAST_SEQ

    async def hook(session: Any) -> None:
        seq = session.info.pop(LAST_SEQ, None)
        if seq is not None:
            await broker.publish({"kind": "wake", "seq": seq})

    return hook


class IngestProducer:
    """``ingest_messages`` from this process, one message per transaction, + broker wake-up."""

    def __init__(self, database_url: str, inbox_id: int, contacts: int, content_len: int, broker: Any) -> None:
        from app.db import Database

        self.db = Database(database_url)
        self.inbox_id, self.contacts, self.content_len = inbox_id, contacts, content_len
        self.hook = wake_hook(broker) if broker is not None else None
        if self.hook:
            self.db.after_commit.append(self.hook)
        self.gate = asyncio.Semaphore(8)

    def message(self, tag: str, i: int, text: str) -> Any:
        from connectors.base import InboundMessage, SenderIdentity

        return InboundMessage(inbox_id=self.inbox_id, source_id=f"fb-{tag}-{i}",
                              sender=SenderIdentity(source_id=f"customer-{i % self.contacts}"), text=text)

    async def step(self, tag: str, rate: float, seconds: float) -> dict[str, Any]:
        from app.tickets.ingest import ingest_messages

        tasks: list[asyncio.Task[None]] = []
        writes: list[float] = []
        errors = 0
        pad = (PAD_WORDS * (self.content_len // len(PAD_WORDS) + 1))[: self.content_len]

        async def one(i: int) -> None:
            nonlocal errors
            async with self.gate:
                stamp = time.time()
                try:
                    await ingest_messages(self.db, [self.message(tag, i, f"fb|{tag}|{stamp:.6f}|{pad}")])
                except Exception:  # noqa: BLE001
                    errors += 1
                writes.append(time.time() - stamp)

        start = time.monotonic()
        await paced(rate, seconds, lambda i: tasks.append(asyncio.create_task(one(i))))
        await asyncio.gather(*tasks)
        return {"duration": time.monotonic() - start, "errors": errors, "writes": writes}

    async def throughput(self, tag: str, n: int, writers: int) -> float:
        """Messages/s ingesting ``n`` messages, one per transaction, ``writers`` at a time."""
        from app.tickets.ingest import ingest_messages

        counter = iter(range(n))

        async def writer() -> None:
            for i in counter:
                await ingest_messages(self.db, [self.message(tag, i, f"notify cost {i}")])

        start = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(writers)))
        return n / (time.perf_counter() - start)

    async def close(self) -> None:
        await self.db.dispose()


async def run_steps(label: str, steps: list[float], args: argparse.Namespace, clients: list[Proc],
                    servers: list[int], n_clients: int, p99_limit: float, produce: Any) -> list[dict[str, Any]]:
    """Raise the rate step by step; ``produce(tag, rate)`` returns (lo, hi, created, producer stats)."""
    rows: list[dict[str, Any]] = []
    if args.warmup > 0:  # first deliveries touch fresh memory (deflate contexts, buffers): not measured
        lo, hi, created, _ = await produce(f"{label}w", steps[0], args.warmup)
        await drain(clients, hi, args.drain_seconds)
        await collect(clients, f"{label}w", lo, hi, created)
        await asyncio.sleep(args.pause)
    k = 0
    attempts = 0
    while k < len(steps):
        rate = steps[k]
        tag = f"{label}{k}-{attempts}"
        quiet = await wait_quiet(args)
        monitor = Monitor(servers, [c.pid for c in clients])
        monitor.start()
        lo, hi, created, stats = await produce(tag, rate, args.step_seconds)
        await drain(clients, hi, args.drain_seconds)
        usage = monitor.stop()
        result = await collect(clients, tag, lo, hi, created)
        events = hi - lo if created is None else len(created)
        writes = sorted(stats.get("writes", []))
        row = {
            "rate": rate, "events": events, "events_per_s": round(events / stats["duration"], 1),
            "deliveries_per_s": round(result["received"] / stats["duration"]), "clients": n_clients,
            "producer_errors": stats.get("errors", 0), **result, **usage,
        }
        if writes:
            row["write_p50_ms"] = round(1000 * _common.percentile(writes, 50), 1)
            row["write_p99_ms"] = round(1000 * _common.percentile(writes, 99), 1)
        row["foreign_before_pct"] = round(quiet, 1)
        # Scenario 1 uses no database server: any PostgreSQL/Redis work then is someone else's too.
        others = usage["cpu_foreign_pct"] + (usage["cpu_db_pct"] if label in ("postroom", "baseline") else 0)
        row["contended"] = others > args.foreign_max
        judge(row, rate, p99_limit)
        print_row(label, row)
        if row["contended"] and attempts < args.retry_contended and result["open"] == n_clients:
            print(f"  (other processes used {others:.1f}% of a core during that step: measuring it again)", flush=True)
            attempts += 1
            await asyncio.sleep(args.pause)
            continue
        rows.append(row)
        k += 1
        attempts = 0
        if should_stop(rows, p99_limit, args.stop_after_fails) or result["open"] < n_clients:
            break
        await asyncio.sleep(args.pause)
    return rows


def best(rows: list[dict[str, Any]]) -> float:
    return max((r["deliveries_per_s"] for r in rows if r["pass"]), default=0.0)


def idle_rss(servers: list[int]) -> float:
    return round(sum(rss_mb(p) for p in servers), 1)


# ------------------------------------------------------------------------------ scenarios


async def scenario1_postroom(args: argparse.Namespace, run: int, steps: list[float], result: dict[str, Any]) -> None:
    work = Path(tempfile.mkdtemp(prefix="postroom-fanout-"))
    url = await asyncio.to_thread(_common.fresh_database, "sqlite")
    env = server_env(url, work, "memory://", args)
    try:
        admin = await create_admin(env)
        inbox_id = await seed(url, admin["account_id"], args.conversations)
        server, port = await start_server("server-s1", env, work)
        import httpx

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                     headers={"api_access_token": admin["access_token"]}) as http:
            listing = (await http.get(f"/api/v1/accounts/{admin['account_id']}/conversations",
                                      params={"status": "all"})).json()
        display_ids = [c["id"] for c in listing["data"]["payload"]] or [1]
        rss_before = idle_rss([server.pid])
        t0 = time.monotonic()
        clients = await start_clients(
            args.clients, args.client_procs, [f"ws://127.0.0.1:{port}/api/v1/accounts/{admin['account_id']}/stream"],
            {"api_access_token": admin["access_token"]}, args.compression)
        print(f"run {run + 1}: postroom, {args.clients} clients connected in {time.monotonic() - t0:.1f} s; "
              f"server RSS {rss_before} -> {idle_rss([server.pid])} MB (inbox {inbox_id})", flush=True)
        result["rss_idle_mb"] = idle_rss([server.pid])
        result["rss_empty_mb"] = rss_before
        reader = SeqReader(url)
        producer = RestProducer([f"http://127.0.0.1:{port}"], admin["account_id"], admin["access_token"],
                                display_ids, args.content_len)
        try:
            async def produce(tag: str, rate: float, seconds: float) -> tuple[int, int, list[list[float]], dict[str, Any]]:
                lo = await reader.max_seq()
                stats = await producer.step(tag, rate, seconds)
                hi = await reader.max_seq()
                return lo, hi, await reader.created(lo, hi), stats

            result["postroom"] = await run_steps("postroom", steps, args, clients, [server.pid], args.clients,
                                                 args.p99_ms or 50, produce)
        finally:
            await producer.close()
            await reader.db.dispose()
        for c in clients:
            await PROCS.stop(c, quit_cmd=True)
        result["best_postroom"] = best(result["postroom"])
    finally:
        await PROCS.stop_all()
        _common.drop_sqlite(url)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


async def scenario1_baseline(args: argparse.Namespace, run: int, steps: list[float], result: dict[str, Any]) -> None:
    sizes = [r["mean_frame_bytes"] for r in result.get("postroom", []) if r["mean_frame_bytes"]]
    size = args.frame_bytes or (round(statistics.median(sizes)) if sizes else 975)
    result["frame_bytes"] = size
    try:
        bport = free_port()
        bserver = await PROCS.spawn("baseline", [PY, __file__, "--role", "baseline-server", "--port", str(bport)]
                                    + (["--no-compression"] if args.compression is None else []), control=True)
        assert bserver.process.stdout is not None
        await asyncio.wait_for(bserver.process.stdout.readline(), 60)
        clients = await start_clients(args.clients, args.client_procs, [f"ws://127.0.0.1:{bport}/"], {},
                                      args.compression)
        print(f"run {run + 1}: baseline, {args.clients} clients, frames of {size} bytes; "
              f"server RSS {idle_rss([bserver.pid])} MB", flush=True)
        result["baseline_rss_idle_mb"] = idle_rss([bserver.pid])

        async def produce_baseline(tag: str, rate: float, seconds: float) -> tuple[int, int, None, dict[str, Any]]:
            answer = await bserver.ask({"cmd": "step", "rate": rate, "seconds": seconds,
                                        "size": size, "tag": tag}, timeout=seconds * 4 + 60)
            return answer["lo"], answer["hi"], None, {"duration": answer["duration"]}

        result["baseline"] = await run_steps("baseline", steps, args, clients, [bserver.pid], args.clients,
                                             args.p99_ms or 50, produce_baseline)
        for c in clients:
            await PROCS.stop(c, quit_cmd=True)
        await PROCS.stop(bserver, quit_cmd=True)
        result["best_baseline"] = best(result["baseline"])
    finally:
        await PROCS.stop_all()


async def scenario1_run(args: argparse.Namespace, run: int, steps: list[float]) -> dict[str, Any]:
    result: dict[str, Any] = {"run": run}
    if args.only != "baseline":
        await scenario1_postroom(args, run, steps, result)
    if args.only != "postroom":
        await scenario1_baseline(args, run, steps, result)
    if "best_postroom" in result and "best_baseline" in result:
        result["ratio"] = (round(result["best_postroom"] / result["best_baseline"], 3)
                           if result["best_baseline"] else float("nan"))
    print(f"run {run + 1}: best sustained: " + ", ".join(
        f"{k[5:]} {result[k]:.0f} deliveries/s" for k in ("best_postroom", "best_baseline") if k in result)
        + (f", ratio {result['ratio']}" if "ratio" in result else ""), flush=True)
    return result


async def notify_cost(producer: IngestProducer, broker: Any, n: int, rounds: int, phase: str) -> dict[str, Any]:
    """Ingest msgs/s (one message per transaction, 1 and 4 writers) without the after-commit
    publish and with it, alternating."""
    figures: dict[str, list[float]] = {}
    hook = wake_hook(broker)
    for r in range(rounds):
        for writers in (1, 4):
            for with_hook in (False, True):
                producer.db.after_commit[:] = [hook] if with_hook else []
                rate = await producer.throughput(f"nc{phase}{r}-{writers}-{int(with_hook)}", n, writers)
                figures.setdefault(f"{writers}w_{'publish' if with_hook else 'none'}", []).append(rate)
    producer.db.after_commit[:] = [producer.hook] if producer.hook else []
    out: dict[str, Any] = {k: round(statistics.median(v), 1) for k, v in figures.items()}
    for writers in (1, 4):
        none, pub = out.get(f"{writers}w_none"), out.get(f"{writers}w_publish")
        if none and pub:
            out[f"{writers}w_cost_pct"] = round(100 * (1 - pub / none), 1)
    return out


async def scenario2_run(args: argparse.Namespace, run: int, broker_kind: str, steps: list[float]) -> dict[str, Any]:
    from app.realtime.broker import broker_for

    work = Path(tempfile.mkdtemp(prefix="postroom-fanout-"))
    url = await asyncio.to_thread(_common.fresh_database, "postgresql", PG_DB_NAME)
    plain_pg = url.replace("postgresql+asyncpg://", "postgresql://")
    broker_url = plain_pg if broker_kind == "postgresql" else REDIS_URL
    env = server_env(url, work, broker_url, args)
    result: dict[str, Any] = {"run": run, "broker": broker_kind}
    clients: list[Proc] = []
    broker = None
    producer: IngestProducer | None = None
    try:
        admin = await create_admin(env)
        inbox_id = await seed(url, admin["account_id"], args.conversations)
        broker = broker_for(broker_url)
        await broker.start()
        producer = IngestProducer(url, inbox_id, args.conversations, args.content_len, broker)
        if args.notify_messages:  # the publish alone: no server listening
            cost = await notify_cost(producer, broker, args.notify_messages, args.notify_rounds, "alone")
            result["notify_cost"] = {f"alone_{k}": v for k, v in cost.items()}
        (a, port_a), (b, port_b) = await start_server("server-a", env, work), await start_server("server-b", env, work)
        servers = [a.pid, b.pid]
        if args.notify_messages:  # and with two idle servers that read the log on every wake-up
            cost = await notify_cost(producer, broker, args.notify_messages, args.notify_rounds, "servers")
            result["notify_cost"].update({f"servers_{k}": v for k, v in cost.items()})
            print(f"run {run + 1}: {broker_kind}: ingest msgs/s without/with the after-commit publish, "
                  f"alone and with 2 idle servers: {result['notify_cost']}", flush=True)
        if args.notify_only:
            return result
        rss_before = idle_rss(servers)
        path = f"/api/v1/accounts/{admin['account_id']}/stream"
        clients = await start_clients(args.clients, args.client_procs,
                                      [f"ws://127.0.0.1:{port_a}{path}", f"ws://127.0.0.1:{port_b}{path}"],
                                      {"api_access_token": admin["access_token"]}, args.compression)
        if args.client_procs < 2:
            print("note: one client process: all clients on server A", flush=True)
        result["rss_empty_mb"], result["rss_idle_mb"] = rss_before, idle_rss(servers)
        print(f"run {run + 1}: {broker_kind}, 2 servers, {args.clients} clients; servers' RSS "
              f"{rss_before} -> {result['rss_idle_mb']} MB (both)", flush=True)
        reader = SeqReader(url)
        try:
            async def produce(tag: str, rate: float, seconds: float) -> tuple[int, int, list[list[float]], dict[str, Any]]:
                lo = await reader.max_seq()
                assert producer is not None
                stats = await producer.step(tag, rate, seconds)
                hi = await reader.max_seq()
                return lo, hi, await reader.created(lo, hi), stats

            result["postroom"] = await run_steps(broker_kind[:8], steps, args, clients, servers, args.clients,
                                                 args.p99_ms or 100, produce)
        finally:
            await reader.db.dispose()
        result["best_postroom"] = best(result["postroom"])
        print(f"run {run + 1}: {broker_kind}: best sustained {result['best_postroom']:.0f} deliveries/s", flush=True)
        for c in clients:
            await PROCS.stop(c, quit_cmd=True)
        clients = []
        return result
    finally:
        if producer is not None:
            await producer.close()
        if broker is not None:
            with contextlib.suppress(Exception):
                await broker.stop()
        for c in clients:
            await PROCS.stop(c)
        await PROCS.stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


async def drop_pg() -> None:
    import asyncpg

    with contextlib.suppress(Exception):
        admin = await asyncpg.connect(_common.PG_SERVER)
        try:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", PG_DB_NAME)
            await admin.execute(f'DROP DATABASE IF EXISTS "{PG_DB_NAME}"')
        finally:
            await admin.close()


# -------------------------------------------------------------------------------- summary


def med(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return round(statistics.median(values), 1) if values else float("nan")


def summarize_steps(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    by_rate: dict[float, list[dict[str, Any]]] = {}
    for rows in runs:
        for row in rows:
            by_rate.setdefault(row["rate"], []).append(row)
    out = []
    for rate, rows in sorted(by_rate.items()):
        out.append({
            "rate": rate, "runs": len(rows), "passed": sum(r["pass"] for r in rows),
            "contended": sum(bool(r.get("contended")) for r in rows),
            "deliveries_per_s": med([r["deliveries_per_s"] for r in rows]),
            "p50_ms": med([r["p50_ms"] for r in rows]), "p99_ms": med([r["p99_ms"] for r in rows]),
            "max_ms": med([r["max_ms"] for r in rows]),
            "e2e_p99_ms": med([r["e2e_p99_ms"] for r in rows]),
            "lost_max": max(r["lost"] for r in rows), "out_of_order_max": max(r["out_of_order"] for r in rows),
            "closed_any": sum(sum(r["closed"].values()) for r in rows),
            "write_p50_ms": med([r.get("write_p50_ms", float("nan")) for r in rows]),
            "rss_mb": med([r["rss_mb"] for r in rows]),
            "cpu_server_pct": med([r["cpu_server_pct"] for r in rows]),
            "cpu_clients_pct": med([r["cpu_clients_pct"] for r in rows]),
            "cpu_db_pct": med([r["cpu_db_pct"] for r in rows]),
            "cpu_foreign_pct": med([r["cpu_foreign_pct"] for r in rows]),
            "machine_busy_pct": med([r["machine_busy_pct"] for r in rows]),
        })
    return out


def print_summary(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title} (medians over runs)")
    print("  ev/s  runs pass  deliv/s    p50 ms   p99 ms   max ms  e2e p99  lost ooo closed  write p50  RSS MB  "
          "cpu srv  cpu cli   cpu db  foreign  machine")
    for r in rows:
        print(f"  {r['rate']:>4} {r['runs']:>5} {r['passed']:>4} {r['deliveries_per_s']:>8.0f} {r['p50_ms']:>9.1f} "
              f"{r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} {r['e2e_p99_ms']:>8.1f} {r['lost_max']:>5} {r['out_of_order_max']:>3} "
              f"{r['closed_any']:>6} {r['write_p50_ms']:>9.1f} {r['rss_mb']:>7.1f} {r['cpu_server_pct']:>7.1f}% "
              f"{r['cpu_clients_pct']:>7.1f}% {r['cpu_db_pct']:>7.1f}% {r['cpu_foreign_pct']:>7.1f}% "
              f"{r['machine_busy_pct']:>7.1f}%")


def other_benchmarks() -> list[str]:
    """Command lines of bench/ingest.py or bench/list.py runs on this machine."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if "bench/ingest.py" in cmd or "bench/list.py" in cmd:
                    found.append(f"{entry.name}: {cmd.strip()}")
    return found


async def orchestrate(args: argparse.Namespace) -> int:
    if args.wait_for_others:
        deadline = time.monotonic() + args.wait_for_others
        while (others := other_benchmarks()) and time.monotonic() < deadline:
            print(f"waiting for other benchmarks to finish: {others}", flush=True)
            await asyncio.sleep(15)
    body: dict[str, Any] = {"machine": _common.machine(), "args": {k: v for k, v in vars(args).items()}}
    print(f"machine: {body['machine']}", flush=True)
    try:
        async with asyncio.timeout(args.max_minutes * 60):
            if args.scenario in ("1", "all"):
                steps = [float(s) for s in args.steps.split(",")]
                runs: list[dict[str, Any]] = []
                s1: dict[str, Any] = {"runs": runs}
                body["scenario1"] = s1  # saved even if a later run fails
                for run in range(args.runs):
                    runs.append(await scenario1_run(args, run, steps))
                line = f"\nscenario 1: best sustained (p99 <= {args.p99_ms or 50} ms, 0 lost):"
                if args.only != "baseline":
                    s1["postroom_steps"] = summarize_steps([r["postroom"] for r in runs])
                    s1["best_postroom_median"] = med([r["best_postroom"] for r in runs])
                    s1["rss_idle_mb_median"] = med([r["rss_idle_mb"] for r in runs])
                    print_summary("scenario 1, postroom (SQLite, memory broker, 1 process)", s1["postroom_steps"])
                    line += (f" postroom {s1['best_postroom_median']:.0f} deliveries/s (runs: "
                             f"{[r['best_postroom'] for r in runs]}); idle RSS with {args.clients} clients "
                             f"{s1['rss_idle_mb_median']} MB;")
                if args.only != "postroom":
                    s1["baseline_steps"] = summarize_steps([r["baseline"] for r in runs])
                    s1["best_baseline_median"] = med([r["best_baseline"] for r in runs])
                    print_summary("scenario 1, baseline (bare websockets broadcast)", s1["baseline_steps"])
                    line += (f" baseline {s1['best_baseline_median']:.0f} deliveries/s (runs: "
                             f"{[r['best_baseline'] for r in runs]});")
                if args.only is None:
                    s1["ratio_median"] = round(statistics.median([r["ratio"] for r in runs]), 3)
                    line += f" ratio {s1['ratio_median']} (runs: {[r['ratio'] for r in runs]})"
                print(line, flush=True)
            if args.scenario in ("2", "all"):
                steps = [float(s) for s in args.steps2.split(",")]
                for kind in args.brokers.split(","):
                    runs = []
                    entry: dict[str, Any] = {"runs": runs}
                    body[f"scenario2_{kind}"] = entry
                    for run in range(args.runs):
                        runs.append(await scenario2_run(args, run, kind, steps))
                    if not args.notify_only:
                        entry["steps"] = summarize_steps([r["postroom"] for r in runs])
                        entry["best_median"] = med([r["best_postroom"] for r in runs])
                    costs = [r["notify_cost"] for r in runs if "notify_cost" in r]
                    if costs:
                        entry["notify_cost_median"] = {k: med([c[k] for c in costs]) for k in costs[0]}
                    if not args.notify_only:
                        print_summary(f"scenario 2, {kind} broker, 2 processes on PostgreSQL", entry["steps"])
                        print(f"scenario 2 {kind}: best sustained (p99 <= {args.p99_ms or 100} ms, 0 lost) "
                              f"{entry['best_median']:.0f} deliveries/s (runs: {[r['best_postroom'] for r in runs]})",
                              flush=True)
                    if costs:
                        print(f"scenario 2 {kind}: ingest msgs/s without/with the after-commit publish (medians): "
                              f"{entry['notify_cost_median']}", flush=True)
    finally:
        await PROCS.stop_all()
        if args.scenario in ("2", "all") and not args.keep:
            await drop_pg()
        if not args.no_save:
            print(f"\nresults: {_common.save_results('fanout', body)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=("orchestrator", "client", "baseline-server", "app-server"),
                        default="orchestrator",
                        help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scenario", choices=("1", "2", "all"), default="all")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--client-procs", type=int, default=2, help="client processes (scenario 2: half on each server)")
    parser.add_argument("--steps", default="5,10,20,30,40,60,80,100", help="scenario 1 rates, events/s")
    parser.add_argument("--steps2", default="5,10,20,30,40", help="scenario 2 rates, events/s")
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--drain-seconds", type=float, default=20.0, help="wait for stragglers after a step")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between steps")
    parser.add_argument("--stop-after-fails", type=int, default=2, help="stop raising after N failing steps in a row")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds at the first rate")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--brokers", default="postgresql,redis")
    parser.add_argument("--p99-ms", type=float, default=0, help="pass limit (default 50 ms s1, 100 ms s2)")
    parser.add_argument("--conversations", type=int, default=20, help="seeded conversations the events go to")
    parser.add_argument("--content-len", type=int, default=120, help="characters of filler in each message")
    parser.add_argument("--frame-bytes", type=int, default=0, help="baseline frame size (default: ours, measured)")
    parser.add_argument("--queue-size", type=int, default=0, help="POSTROOM_STREAM_QUEUE_SIZE (default: app's)")
    parser.add_argument("--catch-up", type=float, default=0, help="POSTROOM_STREAM_CATCH_UP_SECONDS (default: app's)")
    parser.add_argument("--no-compression", dest="compression", action="store_const", const=None, default="deflate",
                        help="clients don't offer permessage-deflate")
    parser.add_argument("--only", choices=("postroom", "baseline"), help="scenario 1: one side only")
    parser.add_argument("--notify-messages", type=int, default=600, help="messages per notify-cost measure (0: skip)")
    parser.add_argument("--notify-rounds", type=int, default=2)
    parser.add_argument("--notify-only", action="store_true", help="scenario 2: only the write cost of the publish")
    parser.add_argument("--server-ws", default="cli",
                        help="what-if: run the app under uvicorn with this ws implementation (websockets, "
                        "websockets-sansio, wsproto) instead of `app.cli serve` (which uses ws=websockets-sansio)")
    parser.add_argument("--foreign-max", type=float, default=15.0,
                        help="%% of a core other people's processes may use during a step before it counts as contended")
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="seconds to wait for quiet before each step")
    parser.add_argument("--retry-contended", type=int, default=2, help="re-measure a contended step up to N times")
    parser.add_argument("--max-minutes", type=float, default=120, help="hard limit for the whole run")
    parser.add_argument("--wait-for-others", type=float, default=0, metavar="SECONDS",
                        help="first wait (up to SECONDS) for running bench/ingest.py or bench/list.py to finish")
    parser.add_argument("--keep", action="store_true", help="keep the server logs and data dirs")
    parser.add_argument("--no-save", action="store_true", help="don't write bench/results/*.json")
    args = parser.parse_args()

    _use_uvloop()
    if args.role == "client":
        asyncio.run(client_main())
        return 0
    if args.role == "baseline-server":
        asyncio.run(baseline_server_main(args.port, args.compression))
        return 0
    if args.role == "app-server":
        app_server_main(args.port, args.server_ws)
        return 0
    global SERVER_WS
    SERVER_WS = args.server_ws

    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.clients + 1024)) if hard != resource.RLIM_INFINITY else 4 * args.clients + 1024
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    try:
        return asyncio.run(orchestrate(args))
    except KeyboardInterrupt:
        print("interrupted; children stopped", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        for proc in PROCS.children:  # anything left (the loop died before stop_all)
            with contextlib.suppress(Exception):
                proc.process.kill()


if __name__ == "__main__":
    sys.exit(main())
