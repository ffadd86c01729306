"""Inbound webhooks: signed Messenger webhook posts against TWO ``postroom serve`` processes
on one PostgreSQL database; accepted-and-stored events/s and request latency.

    .venv/bin/python bench/webhooks_in.py                        # 3 runs, 4000 events each
    .venv/bin/python bench/webhooks_in.py --runs 1 --events 2000 --concurrency 16

Per run, on a fresh PostgreSQL database (dropped and re-created, migrated):

* seed with the app's services: an account, an administrator and a Facebook inbox
  (``app.tickets.inboxes.create_inbox``) with an app secret;
* start two ``postroom serve`` processes (``POSTROOM_BROKER_URL`` = the database, as in
  a two-process deployment; the connector runner on, as shipped);
* the load, in this process: ``--concurrency`` keep-alive HTTP/1.1 connections split
  between the two servers, each posting one webhook body at a time, built and signed by
  ``connectors/meta/sandbox.py`` exactly as Meta sends them (``X-Hub-Signature-256``,
  ``object: page``, one ``messaging`` event per body), ``--senders`` customers writing in
  turn; every ``--redeliver-every``-th post repeats an earlier body (a redelivery, which
  must store nothing). A raw asyncio client keeps the load generator's own CPU small;
* ``--warmup`` posts first (not counted), then ``--events`` measured ones.

Baseline (``--baseline``, on by default): the same load against two processes of a bare
server (Starlette under uvicorn, as ``postroom serve``) that checks the same signature
(``hmac.compare_digest``) and inserts one row per event into a table with a unique key
(``INSERT … ON CONFLICT DO NOTHING`` through an asyncpg pool): the floor of "verify and
store durably" on this machine, with none of the ticket model.

Figures: accepted events/s (measured new events answered 200 / wall time of the measured
posts), request latency p50/p99/max (send to complete answer, this process's clock),
CPU seconds of both servers, this process and PostgreSQL. Checks: every post answered
200; the database holds exactly one message per distinct event (redeliveries included in
the posts, not in the rows). Target: >= 1,000 events/s, p99 <= 50 ms. The median run is
reported; the machine's cores are shared by the load, both servers and the database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402,F401  (puts the project root on sys.path)
from _common import fresh_database, machine, median, percentile, save_results  # noqa: E402
from webhooks import PROCESSES, _cpu_seconds, _free_port, _postgres_cpu, _wait_http  # noqa: E402

PY = sys.executable
POSTROOM = str(Path(PY).with_name("postroom"))
SECRET_KEY = "webhooks-in-bench-secret-key"
TARGET_RATE, TARGET_P99_MS = 1000.0, 50.0
TEXTS = ["สวัสดีค่ะ สินค้ายังมีไหมคะ", "Xin chào, đơn hàng của tôi đâu rồi?", "سلام، سفارشم کی می‌رسد؟",
         "你好,我想退货", "Hello, my parcel has not arrived yet."]


async def seed(db: Any, app_secret: str) -> tuple[int, str]:
    """Account, administrator, Facebook inbox; (inbox id, inbox identifier)."""
    from app.auth import service as auth_service
    from app.auth.secrets_box import SecretsBox
    from app.tickets.inboxes import create_inbox

    box = SecretsBox(SECRET_KEY.encode())
    async with db.write_session() as session:
        account = await auth_service.create_account(session, "Inbound webhook bench")
        await auth_service.create_user(session, account.id, email="admin@bench.invalid", name="Admin",
                                       role="administrator", password="bench-password-1")
        inbox = await create_inbox(session, box, account.id, name="Messenger", channel={
            "type": "facebook", "page_id": "1122334455", "app_secret": app_secret})
        return inbox.id, inbox.identifier


class Connection:
    """One keep-alive HTTP/1.1 connection posting webhook bodies."""

    def __init__(self, port: int, path: str) -> None:
        self.port, self.path = port, path
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, raw: bytes, headers: dict[str, str]) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = [f"POST {self.path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", f"Content-Length: {len(raw)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + raw)
        assert self.reader is not None
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def load(sandbox: Any, ports: list[int], path: str, n: int, args: argparse.Namespace, tag: str,
               sent_bodies: list[tuple[bytes, dict[str, str]]]) -> dict[str, Any]:
    """Post ``n`` bodies over ``--concurrency`` connections; latencies and status codes."""
    bodies = []
    for i in range(n):
        if args.redeliver_every and sent_bodies and i % args.redeliver_every == args.redeliver_every - 1:
            bodies.append((sent_bodies[(i * 7919) % len(sent_bodies)], True))
            continue
        psid = f"{tag}-{i % args.senders}"
        body = sandbox.signed(sandbox.body(sandbox.user_writes(psid, f"{TEXTS[i % len(TEXTS)]} #{tag}{i}")))
        sent_bodies.append(body)
        bodies.append((body, False))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[tuple[tuple[bytes, dict[str, str]], bool]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)

    async def worker(k: int) -> None:
        conn = Connection(ports[k % len(ports)], path)
        try:
            while not queue.empty():
                (raw, headers), _ = queue.get_nowait()
                t0 = time.perf_counter()
                status = await conn.post(raw, headers)
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(args.concurrency)))
    wall = time.perf_counter() - t0
    fresh = sum(1 for _, again in bodies if not again)
    return {"posts": n, "new_events": fresh, "redeliveries": n - fresh, "wall_s": wall, "statuses": statuses,
            "events_per_s": fresh / wall, "posts_per_s": n / wall,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "max_ms": max(latencies) * 1000}


BASELINE_SQL = "CREATE TABLE IF NOT EXISTS bench_events (mid text PRIMARY KEY, body jsonb NOT NULL)"


def baseline_server_main(port: int, dsn: str, secret: str) -> None:
    """The baseline: verify the signature, insert each event once, answer 200."""
    import hashlib
    import hmac
    import json as json_

    import asyncpg
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    pool: Any = None

    async def receive(request: Request) -> JSONResponse:
        nonlocal pool
        raw = await request.body()
        expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), request.headers.get("x-hub-signature-256", "").encode()):
            return JSONResponse({"message": "bad signature"}, status_code=403)
        body = json_.loads(raw)
        if pool is None:
            pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
        rows = [(e["message"]["mid"], json_.dumps(e)) for entry in body["entry"] for e in entry["messaging"]]
        async with pool.acquire() as conn:
            await conn.executemany("INSERT INTO bench_events (mid, body) VALUES ($1, $2::jsonb) ON CONFLICT DO NOTHING", rows)
        return JSONResponse({"received": len(rows)})

    async def ready(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/webhooks/facebook/{identifier}", receive, methods=["POST"]),
                            Route("/readyz", ready)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


async def baseline_run(args: argparse.Namespace, run: int, workdir: Path) -> dict[str, Any]:
    """The same load against the bare baseline server (two processes)."""
    import asyncpg

    from connectors.meta.sandbox import MetaSandbox

    url = await asyncio.to_thread(fresh_database, "postgresql", "postroom_bench_webhooks_in_base")
    dsn = "postgresql://" + url.split("://", 1)[1].replace("+asyncpg", "")
    conn = await asyncpg.connect(dsn)
    await conn.execute(BASELINE_SQL)
    await conn.close()
    sandbox = MetaSandbox(app_secret="bench-app-secret")
    ports = [_free_port(), _free_port()]
    servers = []
    for k, port in enumerate(ports):
        log = workdir / f"baseline-{run}-{k}.log"
        child = PROCESSES.start([PY, __file__, "--role", "baseline-server", "--port", str(port), "--dsn", dsn,
                                 "--secret", sandbox.app_secret], log=log)
        await _wait_http(f"http://127.0.0.1:{port}/readyz", child, 60, log)
        servers.append(child)
    try:
        sent: list[tuple[bytes, dict[str, str]]] = []
        await load(sandbox, ports, "/webhooks/facebook/baseline", args.warmup, args, f"w{run}", sent)
        result = await load(sandbox, ports, "/webhooks/facebook/baseline", args.events, args, f"r{run}", sent)
        conn = await asyncpg.connect(dsn)
        stored = await conn.fetchval("SELECT count(*) FROM bench_events")
        await conn.close()
        result.update(stored_messages=stored, distinct_events=len({raw for raw, _ in sent}))
        result["exactly_once"] = result["stored_messages"] == result["distinct_events"]
        return result
    finally:
        for child in servers:
            PROCESSES.stop(child)


def _start_profiler(pid: int, args: argparse.Namespace) -> subprocess.Popen:
    """py-spy one server over the measured phase (``--profile FILE``, raw collapsed stacks)."""
    return subprocess.Popen([str(Path(PY).with_name("py-spy")), "record", "--pid", str(pid), "--rate", "250",
                             "--format", "raw", "-o", args.profile, "--idle"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def one_run(args: argparse.Namespace, run: int, workdir: Path) -> dict[str, Any]:
    from sqlalchemy import func, select

    from app.db import Database
    from app.models import Message
    from connectors.meta.sandbox import MetaSandbox

    url = await asyncio.to_thread(fresh_database, "postgresql", "postroom_bench_webhooks_in")
    db = Database(url)
    sandbox = MetaSandbox(app_secret="bench-app-secret")  # builds and signs bodies; not served
    inbox_id, identifier = await seed(db, sandbox.app_secret)
    plain = "postgresql://" + url.split("://", 1)[1]
    ports = [_free_port(), _free_port()]
    servers = []
    for k, port in enumerate(ports):
        env = {**os.environ, "POSTROOM_DATABASE_URL": plain, "POSTROOM_SECRET_KEY": SECRET_KEY,
               "POSTROOM_DATA_DIR": str(workdir / f"data-{run}-{k}"), "POSTROOM_BROKER_URL": plain,
               "POSTROOM_LOG_LEVEL": "WARNING"}
        log = workdir / f"server-{run}-{k}.log"
        child = PROCESSES.start([POSTROOM, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, log=log)
        await _wait_http(f"http://127.0.0.1:{port}/readyz", child, 60, log)
        servers.append(child)
    path = f"/webhooks/facebook/{identifier}"
    try:
        sent: list[tuple[bytes, dict[str, str]]] = []
        await load(sandbox, ports, path, args.warmup, args, f"w{run}", sent)
        spy = _start_profiler(servers[0].pid, args) if args.profile else None
        cpu0 = [_cpu_seconds(s.pid) for s in servers] + [time.process_time(), _postgres_cpu()]
        result = await load(sandbox, ports, path, args.events, args, f"r{run}", sent)
        cpu1 = [_cpu_seconds(s.pid) for s in servers] + [time.process_time(), _postgres_cpu()]
        if spy is not None:  # py-spy writes its file on SIGINT
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        async with db.read_session() as session:
            stored = await session.scalar(select(func.count()).select_from(Message).where(Message.inbox_id == inbox_id))
        distinct = len({raw for raw, _ in sent})
        result.update(stored_messages=stored, distinct_events=distinct, exactly_once=stored == distinct,
                      all_ok=set(result["statuses"]) == {200},
                      cpu_s={"server_1": cpu1[0] - cpu0[0], "server_2": cpu1[1] - cpu0[1],
                             "load": cpu1[2] - cpu0[2], "postgres": cpu1[3] - cpu0[3]})
        return result
    finally:
        for child in servers:
            PROCESSES.stop(child)
        await db.dispose()


async def main(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="postroom-webhooks-in-"))
    runs = []
    baselines = []
    try:
        for run in range(args.runs):
            if args.baseline:
                base = await baseline_run(args, run, workdir)
                baselines.append(base)
                print(f"run {run + 1} baseline: {base['events_per_s']:.0f} events/s, p50 {base['p50_ms']:.1f} ms, "
                      f"p99 {base['p99_ms']:.1f} ms; statuses {base['statuses']}; exactly once: {base['exactly_once']}",
                      flush=True)
            result = await one_run(args, run, workdir)
            runs.append(result)
            print(f"run {run + 1}: {result['events_per_s']:.0f} events/s ({result['posts_per_s']:.0f} posts/s), "
                  f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms; "
                  f"statuses {result['statuses']}; stored {result['stored_messages']} / distinct "
                  f"{result['distinct_events']} (exactly once: {result['exactly_once']}); cpu {result['cpu_s']}",
                  flush=True)
    finally:
        PROCESSES.stop_all()
    rates = [r["events_per_s"] for r in runs]
    p99s = [r["p99_ms"] for r in runs]
    summary = {"median_events_per_s": median(rates), "median_p99_ms": median(p99s),
               "target": {"events_per_s": TARGET_RATE, "p99_ms": TARGET_P99_MS},
               "all_exactly_once": all(r["exactly_once"] and r["all_ok"] for r in runs)}
    if baselines:
        summary["baseline_median_events_per_s"] = median([b["events_per_s"] for b in baselines])
        summary["baseline_median_p99_ms"] = median([b["p99_ms"] for b in baselines])
        summary["app_over_baseline"] = summary["median_events_per_s"] / summary["baseline_median_events_per_s"]
        print(f"baseline median: {summary['baseline_median_events_per_s']:.0f} events/s, "
              f"p99 {summary['baseline_median_p99_ms']:.1f} ms; app / baseline {summary['app_over_baseline']:.2f}")
    print(f"median: {summary['median_events_per_s']:.0f} events/s, p99 {summary['median_p99_ms']:.1f} ms "
          f"(target >= {TARGET_RATE:.0f}/s, <= {TARGET_P99_MS:.0f} ms); exactly once: {summary['all_exactly_once']}")
    path = save_results("webhooks_in", {"args": vars(args), "machine": machine(), "runs": runs,
                                        "baselines": baselines, "summary": summary})
    print(f"saved {path}")
    return 0 if summary["all_exactly_once"] else 1


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=4000, help="measured posts per run")
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32, help="connections, split between the two servers")
    parser.add_argument("--senders", type=int, default=500, help="distinct customers writing")
    parser.add_argument("--redeliver-every", type=int, default=20, help="every n-th post repeats an earlier body (0: never)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the bare baseline server")
    parser.add_argument("--profile", help="py-spy the first server over the measured phase into this file (raw)")
    parser.add_argument("--role", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    parser.add_argument("--secret", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    if arguments.role == "baseline-server":
        baseline_server_main(arguments.port, arguments.dsn, arguments.secret)
        sys.exit(0)
    sys.exit(asyncio.run(main(arguments)))
