"""The agents' inbox page in a real browser: first list render, and ingest to row.

    .venv/bin/python bench/ui.py                          # 50 and 10,000 conversations, SQLite
    .venv/bin/python bench/ui.py --sizes 50 --loads 3 --messages 5
    .venv/bin/python bench/ui.py --database postgresql

For each size: a fresh database (SQLite file, or ``postroom_bench_ui`` on PostgreSQL),
an account with an administrator, a web-widget inbox, and that many open conversations
(one customer message each, written through ``app.tickets.ingest.ingest_messages`` in
batches of 500, Thai/Vietnamese/Persian/Chinese/English text). Then one ``postroom
serve`` process on it (connector runner off, widget limits raised for the run) and
Debian's Chromium (headless, through Playwright) with the agent's session already in
``localStorage`` (a signed-in reload, as an agent starts the day):

* **first list render**: ``page.goto("/")`` until the page marks
  ``postroom:list-rendered`` (the first page of 25 rows and the tab counts are on
  screen); the mark's time from navigation start. ``--loads`` times, each in a fresh
  browser context (``cold``: nothing cached), then a reload in that context
  (``reload``: the modules revalidated by ETag, as an agent's browser has them). After
  one untimed load that warms the freshly started server. Median and max; and the
  reload's ``GET …/conversations`` call alone (``list_request``, from Resource Timing).
* **ingest to row**: with the page open on *All / Open*, a new visitor writes through
  the widget API (``POST /widget/api/messages``: ingest, commit, event, websocket,
  render); measured from just before the POST to the moment a ``MutationObserver`` in
  the page sees the new conversation's row (``performance.timeOrigin + now()``, the
  same machine clock). ``--messages`` times, one new conversation each, median and max.
  Then the same for a new message in a conversation already in the list (its preview
  changes and it moves to the top). ``post`` is the POST's own time (until its answer).

Targets: first render <= 1 s, ingest to row <= 300 ms. Figures go to stdout and
bench/results/ui-*.json. Every process started here is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (puts the project root on sys.path)

import httpx  # noqa: E402

from app.auth.service import create_account, create_user  # noqa: E402
from app.config import Settings  # noqa: E402
from app.runtime import Runtime  # noqa: E402
from app.tickets import inboxes  # noqa: E402
from app.tickets.ingest import ingest_messages  # noqa: E402
from connectors.base import InboundMessage, SenderIdentity  # noqa: E402

CHROMIUM = os.environ.get("POSTROOM_CHROMIUM", "/usr/bin/chromium")
TEXTS = ["สินค้าที่สั่งไปจะส่งถึงเมื่อไหร่ครับ", "Áo này còn size M không ạ?", "سفارش من کی می‌رسد؟",
         "我想退货，订单号是 CN-5521", "Where is my parcel?"]
OBSERVER = """
(name) => new Promise((resolve) => {
  const list = document.getElementById("conv-list");
  const seen = () => [...list.querySelectorAll(".row-name, .row-preview")].some((el) => el.textContent.includes(name));
  if (seen()) return resolve(performance.timeOrigin + performance.now());
  const observer = new MutationObserver(() => {
    if (seen()) { observer.disconnect(); resolve(performance.timeOrigin + performance.now()); }
  });
  observer.observe(list, { childList: true, subtree: true, characterData: true });
})
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def seed(url: str, data_dir: Path, size: int) -> dict:
    runtime = Runtime.from_settings(Settings(database_url=url, data_dir=data_dir, secret_key="bench-secret"))
    async with runtime.db.write_session() as session:
        account = await create_account(session, "UI bench shop")
        admin = await create_user(session, account.id, email="agent@bench.example", name="Bench Agent",
                                  role="administrator", password="bench-password")
        widget = await inboxes.create_inbox(session, runtime.box, account.id, name="Website chat",
                                            channel={"type": "web_widget", "website_url": "https://shop.example"})
        api = await inboxes.create_inbox(session, runtime.box, account.id, name="API", channel={"type": "api"})
        ids = {"account_id": account.id, "token": admin.access_token, "website_token": widget.identifier,
               "user": {"id": admin.user.id, "name": "Bench Agent", "email": "agent@bench.example", "role": "administrator"}}
    started = time.perf_counter()
    for first in range(0, size, 500):
        await ingest_messages(runtime.db, [
            InboundMessage(inbox_id=api.id, source_id=f"seed-{i}", sender=SenderIdentity(source_id=f"c-{i}", name=f"Customer {i}"),
                           text=TEXTS[i % len(TEXTS)])
            for i in range(first, min(size, first + 500))
        ])
    print(f"  seeded {size} conversations in {time.perf_counter() - started:.1f} s", flush=True)
    await runtime.db.dispose()
    return ids


def start_server(url: str, data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "POSTROOM_DATABASE_URL": url, "POSTROOM_DATA_DIR": str(data_dir),
           "POSTROOM_SECRET_KEY": "bench-secret", "POSTROOM_CONNECTOR_RUNNER": "false", "POSTROOM_LOG_LEVEL": "WARNING",
           "POSTROOM_WIDGET_VISITOR_BURST": "10000", "POSTROOM_WIDGET_MESSAGE_BURST": "10000"}
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], cwd=_common.ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start")


async def measure(base: str, ids: dict, loads: int, messages: int) -> dict:
    from playwright.async_api import async_playwright

    session = {"token": ids["token"], "accountId": ids["account_id"], "accountName": "UI bench shop", "user": ids["user"]}
    init = f"localStorage.setItem('postroom.session', {json.dumps(json.dumps(session))});"
    result: dict = {"first_render_cold_ms": [], "first_render_reload_ms": [], "list_request_ms": [],
                    "new_conversation_ms": [], "existing_conversation_ms": [], "post_ms": []}
    mark = "performance.getEntriesByName('postroom:list-rendered')[0].startTime"
    # How long the list's REST call took, of the reload (the rest is the page and the machine).
    list_call = ("performance.getEntriesByType('resource').filter(e => e.name.includes('/conversations?'))"
                 ".map(e => e.responseEnd - e.startTime)[0]")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                   args=["--no-sandbox", "--disable-gpu"])
        try:
            # A freshly started server answers its very first requests slowly (lazy imports,
            # first SQL statements): one untimed load first.
            for timed in [False] + [True] * loads:
                context = await browser.new_context(viewport={"width": 1280, "height": 800})
                await context.add_init_script(init)
                page = await context.new_page()
                await page.goto(base + "/")
                await page.locator("#root[data-list-rendered=true]").wait_for(timeout=30_000)
                if timed:
                    result["first_render_cold_ms"].append(await page.evaluate(mark))
                    await page.reload()
                    await page.locator("#root[data-list-rendered=true]").wait_for(timeout=30_000)
                    result["first_render_reload_ms"].append(await page.evaluate(mark))
                    result["list_request_ms"].append(await page.evaluate(list_call))
                await context.close()
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            await context.add_init_script(init)
            page = await context.new_page()
            await page.goto(base + "/")
            await page.locator(".live[data-state=online]").wait_for(timeout=30_000)
            await page.locator("#root[data-list-rendered=true]").wait_for(timeout=30_000)
            async with httpx.AsyncClient(base_url=base) as http:
                visitors = []
                for i in range(messages):
                    name = f"Bench visitor {uuid.uuid4().hex[:8]}"
                    answer = (await http.post("/widget/api/visitors", json={"website_token": ids["website_token"],
                                                                            "name": name})).json()
                    visitors.append((name, answer["token"]))
                for key, samples in (("new_conversation_ms", visitors), ("existing_conversation_ms", visitors)):
                    for name, token in samples:
                        marker = name if key == "new_conversation_ms" else f"again {uuid.uuid4().hex[:8]}"
                        watcher = asyncio.ensure_future(page.evaluate(OBSERVER, marker))
                        await asyncio.sleep(0.05)  # the observer is installed
                        sent = time.time() * 1000
                        response = await http.post("/widget/api/messages", headers={"X-Widget-Token": token},
                                                   json={"content": f"{marker} ขอสอบถามค่ะ"})
                        answered = time.time() * 1000
                        response.raise_for_status()
                        seen = await asyncio.wait_for(watcher, 15)
                        result[key].append(seen - sent)
                        result["post_ms"].append(answered - sent)
                        await asyncio.sleep(0.3)
            await context.close()
        finally:
            await browser.close()
    return result


def summary(values: list[float]) -> dict:
    return {"median": round(_common.median(values), 1), "max": round(max(values), 1), "n": len(values)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50,10000")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--messages", type=int, default=10)
    args = parser.parse_args()
    report = {"database": args.database, "sizes": {}}
    for size in (int(x) for x in args.sizes.split(",")):
        print(f"== {size} conversations ({args.database})", flush=True)
        url = await asyncio.to_thread(_common.fresh_database, args.database, "postroom_bench_ui")
        data_dir = Path(tempfile.mkdtemp(prefix="postroom-ui-bench-"))
        ids = await seed(url, data_dir, size)
        process, base = start_server(url, data_dir)
        try:
            raw = await measure(base, ids, args.loads, args.messages)
        finally:
            process.terminate()
            process.wait(timeout=15)
            if args.database == "sqlite":
                _common.drop_sqlite(url)
        figures = {key: summary(values) for key, values in raw.items()}
        report["sizes"][size] = {"figures": figures, "raw": raw}
        for key, figure in figures.items():
            print(f"  {key:26} median {figure['median']:7.1f} ms   max {figure['max']:7.1f} ms   (n={figure['n']})", flush=True)
    _common.RESULTS.mkdir(exist_ok=True)
    out = _common.RESULTS / f"ui-{args.database}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"results: {out.relative_to(_common.ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
