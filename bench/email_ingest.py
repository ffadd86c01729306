"""E-mail ingest throughput: raw mail through the parser and the ingest path.

    .venv/bin/python bench/email_ingest.py                          # 2,000 mails, 3 runs, both paths
    .venv/bin/python bench/email_ingest.py --mails 500 --runs 1 --paths files
    .venv/bin/python bench/email_ingest.py --split     # parsing and storing timed apart

Two paths, each on a FRESH migrated database per run:

* ``files`` (into SQLite): 2,000 generated ``.eml`` files are read, parsed in batches
  of 200 as the IMAP connector parses what it fetched (``connectors.email.connector.
  parse_batch``: a worker process, a time limit, a bad mail set aside alone; MIME, charsets,
  HTML sanitizing, reply extraction, the raw mail kept as ``original.eml`` under the data
  dir) and stored with ``ingest_messages``, one transaction per batch, the next batch
  parsed while one is stored;
* ``imap`` (into PostgreSQL): the same mails are APPENDed once to a throwaway Dovecot
  (``connectors.email.dovecot``), then ``EmailConnector.fetch`` (UID SEARCH, UID FETCH,
  parsing in a worker process) and ``ingest_messages`` with the cursor saved in the same
  transaction run until the folder is drained, the next batch fetched while one is stored
  whenever the connector allows it (``fetch_ahead``), as the runner does.

The mails vary like a support mailbox: plain and HTML-only and multipart/alternative
bodies, English, Thai (TIS-620), Chinese (GB2312, Big5), Persian (windows-1256),
Vietnamese (windows-1258) and UTF-8, quoted reply history, small PDF and image attachments,
inline images, a fifth of them replies in earlier threads, a few auto-replies. It
prints messages/s and CPU ms/message per run (of this process: the parser's worker is
not counted), and the medians over the runs.
Targets: files -> SQLite >= 700 messages/s; IMAP -> PostgreSQL >= 300 messages/s.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (puts the project root on sys.path)
from sqlalchemy import func, select  # noqa: E402

from app.auth.secrets_box import SecretsBox  # noqa: E402
from app.auth.service import create_account  # noqa: E402
from app.db import Database  # noqa: E402
from app.models import Message  # noqa: E402
from app.runner.leases import save_cursor  # noqa: E402
from app.storage import FileStore  # noqa: E402
from app.tickets.inboxes import create_inbox  # noqa: E402
from app.tickets.ingest import ingest_messages  # noqa: E402
from connectors.base import ConnectorConfig  # noqa: E402
from connectors.email import dovecot, parser_pool  # noqa: E402
from connectors.email.connector import EmailConnector, parse_batch  # noqa: E402
from connectors.email.parse import DEFAULT_MAX_PART_BYTES, MailParseError  # noqa: E402

TARGETS = {"files": 700.0, "imap": 300.0}
BATCH = 200

#: (charset, customer's text, quoted history) per language.
TEXTS = [
    ("utf-8", "Hi, my parcel has not arrived yet. Could you check the tracking please?",
     "Your order has shipped and will arrive in 3-5 days."),
    ("tis-620", "สวัสดีครับ พัสดุยังไม่ถึงเลยครับ รบกวนตรวจสอบให้หน่อยครับ", "คำสั่งซื้อของคุณจัดส่งแล้ว"),
    ("gb2312", "您好，我的订单还没有到，请帮我查一下物流。", "您的订单已发货，预计三到五天送达。"),
    ("big5", "您好，請問我的訂單什麼時候出貨？謝謝。", "您的訂單已出貨。"),
    ("windows-1256", "سلام، سفارش من هنوز نرسيده است. لطفا بررسي کنيد.", "سفارش شما ارسال شد."),
    ("windows-1258", "Xin chào, tôi muốn đổi hàng vì bị sai kích thước.", "Đơn hàng của bạn đã được gửi."),
    ("utf-8", "Hallo, die Lieferung ist beschädigt angekommen. Bitte um Ersatz.", "Ihre Bestellung wurde versandt."),
]
PDF = b"%PDF-1.4\n" + b"0" * 6000
PNG = b"\x89PNG\r\n\x1a\n" + b"1" * 3000


def _cp1258(text: str) -> bytes:
    import unicodedata

    out = b""
    for char in text:
        try:
            out += char.encode("cp1258")
        except UnicodeEncodeError:
            parts = unicodedata.normalize("NFD", char)
            out += unicodedata.normalize("NFC", parts[:-1]).encode("cp1258") + parts[-1].encode("cp1258")
    return out


def _encode(text: str, charset: str) -> bytes:
    if charset == "windows-1258":
        return _cp1258(text)
    codec = {"tis-620": "tis_620", "windows-1256": "cp1256"}.get(charset, charset)
    return text.encode(codec)


def generate(count: int, seed: int = 4) -> list[bytes]:
    """``count`` varied raw mails (deterministic)."""
    rng = random.Random(seed)
    mails: list[bytes] = []
    roots: list[tuple[str, str, str]] = []  # (message id, sender, subject)
    now = datetime.now(UTC)
    for i in range(count):
        charset, text, quoted = rng.choice(TEXTS)
        kind = rng.random()
        message_id = f"bench-{seed}-{i}@customer{i % 97}.example"
        msg = EmailMessage()
        if roots and kind < 0.2:
            root_id, sender, subject = rng.choice(roots)
            msg["In-Reply-To"] = f"<{root_id}>"
            msg["References"] = f"<{root_id}>"
            subject = "Re: " + subject
        else:
            sender = f"Customer {i % 400} <c{i % 400}@customer{i % 97}.example>"
            subject = f"Order #{10000 + i}: {text[:20]}"
            roots.append((message_id, sender, subject))
        msg["From"] = sender
        msg["To"] = "help@shop.example"
        msg["Subject"] = subject
        msg["Message-ID"] = f"<{message_id}>"
        msg["Date"] = format_datetime(now - timedelta(minutes=count - i))
        if 0.2 <= kind < 0.23:
            msg["Auto-Submitted"] = "auto-replied"
        body = f"{text}\n\nOn Mon, 2 Nov 2026 at 10:00, Shop <help@shop.example> wrote:\n> {quoted}\n> \n> Shop team\n"
        style = rng.random()
        if style < 0.45:
            # The customer's own charset, as older clients still send it.
            msg.set_content(_encode(body, charset), maintype="text", subtype="plain", cte="base64")
            msg.set_param("charset", charset)
        elif style < 0.6:
            html = (f"<div dir=\"auto\">{text}</div><div class=\"gmail_quote\"><div>On Mon, Shop wrote:</div>"
                    f"<blockquote>{quoted}</blockquote></div>")
            msg.set_content(html, subtype="html")
        else:
            msg.set_content(body)
            msg.add_alternative(f"<html><body><p>{text}</p><blockquote>{quoted}</blockquote></body></html>",
                                subtype="html")
            if style > 0.85:
                msg.add_attachment(PDF, maintype="application", subtype="pdf", filename=f"invoice-{i}.pdf")
            elif style > 0.8:
                msg.add_attachment(PNG, maintype="image", subtype="png", filename="photo.png")
        mails.append(bytes(msg))
    return mails


async def _setup(url: str) -> tuple[Database, int]:
    db = Database(url)
    async with db.write_session() as session:
        account = await create_account(session, "Bench")
        inbox = await create_inbox(session, SecretsBox(b"key"), account.id, name="Support mail",
                                   channel={"type": "email", "email": "help@shop.example"})
    return db, inbox.id


async def _count(db: Database, inbox_id: int) -> int:
    async with db.read_session() as session:
        return int(await session.scalar(select(func.count()).select_from(Message).where(Message.inbox_id == inbox_id)))


async def run_files(url: str, folder: Path, expected: int) -> tuple[float, float]:
    """Files -> parser -> ingest into a fresh SQLite database; (messages/s, CPU ms/message)."""
    data = Path(tempfile.mkdtemp(prefix="postroom-bench-mail-"))
    db, inbox_id = await _setup(url)
    store = FileStore(data)
    own = frozenset({"shop.example"})

    async def parse(paths: list[Path]) -> list[Any]:
        parsed = await parse_batch([path.read_bytes() for path in paths], inbox_id=inbox_id,
                                   max_part_bytes=DEFAULT_MAX_PART_BYTES, own_domains=own)
        return [p.message for p in parsed if not isinstance(p, MailParseError) and not p.own]

    try:
        files = sorted(folder.glob("*.eml"))
        started, cpu = time.perf_counter(), time.process_time()
        batches = [files[i:i + BATCH] for i in range(0, len(files), BATCH)]
        ahead = asyncio.ensure_future(parse(batches[0]))
        for i in range(len(batches)):
            parsed = await ahead
            if i + 1 < len(batches):  # the worker parses the next batch while this one is stored
                ahead = asyncio.ensure_future(parse(batches[i + 1]))
            await ingest_messages(db, parsed, store=store)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        stored = await _count(db, inbox_id)
        assert stored == expected, (stored, expected)
        return len(files) / elapsed, cpu / len(files) * 1000
    finally:
        await db.dispose()
        _common.drop_sqlite(url)
        shutil.rmtree(data, ignore_errors=True)


async def run_files_split(url: str, folder: Path, expected: int) -> tuple[float, float, float]:
    """The files path's two stages one after the other, to see which one sets the rate:
    (parsing alone, mails/s; storing alone, mails/s; CPU ms/mail of storing)."""
    data = Path(tempfile.mkdtemp(prefix="postroom-bench-mail-"))
    db, inbox_id = await _setup(url)
    store = FileStore(data)
    own = frozenset({"shop.example"})
    try:
        files = sorted(folder.glob("*.eml"))
        raws = [[path.read_bytes() for path in files[i:i + BATCH]] for i in range(0, len(files), BATCH)]
        started = time.perf_counter()
        batches = []
        for batch in raws:
            parsed = await parse_batch(batch, inbox_id=inbox_id, max_part_bytes=DEFAULT_MAX_PART_BYTES,
                                       own_domains=own)
            batches.append([p.message for p in parsed if not isinstance(p, MailParseError) and not p.own])
        parsing = time.perf_counter() - started
        started, cpu = time.perf_counter(), time.process_time()
        for messages in batches:
            await ingest_messages(db, messages, store=store)
        storing, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert await _count(db, inbox_id) == expected
        return len(files) / parsing, len(files) / storing, cpu / len(files) * 1000
    finally:
        await db.dispose()
        _common.drop_sqlite(url)
        shutil.rmtree(data, ignore_errors=True)


async def run_imap(url: str, server: dovecot.Dovecot, folder: str, expected: int) -> tuple[float, float]:
    """Dovecot -> EmailConnector -> ingest into a fresh PostgreSQL database; (messages/s,
    CPU ms/message of this process: Dovecot's and PostgreSQL's CPU are not counted)."""
    data = Path(tempfile.mkdtemp(prefix="postroom-bench-mail-"))
    db, inbox_id = await _setup(url)
    store = FileStore(data)
    connector = EmailConnector(ConnectorConfig(inbox_id=inbox_id, settings={
        "email": "help@shop.example", "imap_address": "127.0.0.1", "imap_port": server.port,
        "imap_login": server.user, "imap_enable_ssl": False, "imap_folder": folder, "imap_idle": False,
        "imap_poll_seconds": 0.01, "imap_sync_days": 3650}, secrets={"imap_password": server.password}))
    try:
        cursor: dict = {}
        ahead: asyncio.Future | None = None
        started, cpu = time.perf_counter(), time.process_time()
        while True:
            messages, new_cursor = await (ahead or connector.fetch(cursor))
            ahead = None
            if not messages and new_cursor == cursor:
                break
            if connector.fetch_ahead(new_cursor):
                ahead = asyncio.ensure_future(connector.fetch(new_cursor))

            async def also(session, value=new_cursor):  # type: ignore[no-untyped-def]
                await save_cursor(session, inbox_id, value)

            if messages:
                await ingest_messages(db, messages, store=store, also=also)
            cursor = new_cursor
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        stored = await _count(db, inbox_id)
        assert stored == expected, (stored, expected)
        return expected / elapsed, cpu / expected * 1000
    finally:
        await connector.aclose()
        await db.dispose()
        shutil.rmtree(data, ignore_errors=True)


async def _fill(server: dovecot.Dovecot, folder: str, mails: list[bytes]) -> None:
    import aioimaplib

    client = aioimaplib.IMAP4(host="127.0.0.1", port=server.port, timeout=30)
    await client.wait_hello_from_server()
    await client.login(server.user, server.password)
    await client.protocol.simple_command("CREATE", folder)
    for raw in mails:
        response = await client.append(raw, mailbox=folder)
        assert response.result == "OK", response
    await client.logout()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--paths", default="files,imap")
    parser.add_argument("--split", action="store_true",
                        help="files path only: parse every batch, then store them, and time each stage")
    args = parser.parse_args()
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    mails = generate(args.mails)
    distinct = args.mails  # every generated mail has its own Message-ID
    print(f"{len(mails)} mails, {sum(map(len, mails)) / len(mails) / 1024:.1f} KiB on average; "
          f"machine: {_common.machine()}")
    results: dict[str, list[float]] = {p: [] for p in paths}
    cpu_ms: dict[str, list[float]] = {p: [] for p in paths}
    folder = Path(tempfile.mkdtemp(prefix="postroom-bench-eml-"))
    server = None
    try:
        for i, raw in enumerate(mails):
            (folder / f"{i:05d}.eml").write_bytes(raw)
        if "imap" in paths:
            if not dovecot.available():
                raise SystemExit("Dovecot is not installed: bash scripts/services.sh dovecot")
            server = dovecot.Dovecot()
            server.start()
            asyncio.run(_fill(server, "Bench", mails))
        asyncio.run(parser_pool.POOL.start())  # as in a running server: its parser workers are up
        if args.split:
            for run in range(args.runs):
                parsing, storing, cpu = asyncio.run(run_files_split(_common.fresh_database("sqlite"), folder, distinct))
                print(f"run {run + 1}: parsing alone {parsing:7.1f} mails/s; storing alone (SQLite) "
                      f"{storing:7.1f} mails/s, {cpu:.2f} CPU ms/mail")
            return
        for run in range(args.runs):
            if "files" in paths:
                rate, cpu = asyncio.run(run_files(_common.fresh_database("sqlite"), folder, distinct))
                results["files"].append(rate)
                cpu_ms["files"].append(cpu)
                print(f"run {run + 1}: files -> SQLite      {rate:8.1f} messages/s  {cpu:6.2f} CPU ms/message")
            if "imap" in paths:
                assert server is not None
                url = _common.fresh_database("postgresql", "postroom_bench_email")
                rate, cpu = asyncio.run(run_imap(url, server, "Bench", distinct))
                results["imap"].append(rate)
                cpu_ms["imap"].append(cpu)
                print(f"run {run + 1}: IMAP -> PostgreSQL   {rate:8.1f} messages/s  {cpu:6.2f} CPU ms/message")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if server is not None:
            server.close()
    print("medians:")
    for path, rates in results.items():
        value = _common.median(rates)
        verdict = "ok" if value >= TARGETS[path] else "BELOW TARGET"
        cpu = _common.median(cpu_ms[path])
        print(f"  {path:6s} {value:8.1f} messages/s (target >= {TARGETS[path]:.0f}: {verdict}); "
              f"{cpu:.2f} CPU ms/message in this process")
    _common.save_results("email_ingest", {"machine": _common.machine(), "mails": args.mails, "results": results,
                                          "cpu_ms_per_message": cpu_ms})


if __name__ == "__main__":
    main()
