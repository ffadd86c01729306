"""Real-world mail nobody in this project wrote (``../shared/corpus``, see its README):
every mail is ingested or quarantined with a reason within a time limit, bounces and
complaints are recognised, reply text and Zammad's expected senders and subjects agree."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.models import Message, QuarantinedMessage
from app.tickets.ingest import ingest_messages
from app.tickets.quarantine import store_quarantined
from connectors.email.connector import QuarantinedMail
from connectors.email.parse import MailParseError, parse_mail

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus")
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"mail corpus not found at {CORPUS}")

#: Longest one mail may take to parse here (the worst, a 3 MB endlessly nested message,
#: takes a few seconds on a loaded 2-core machine).
PER_MESSAGE_SECONDS = 60.0
_NOT_MAIL = ("LICENSE", ".yml", ".md", ".tsv", "_reply_text", ".html")


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and not p.name.endswith(_NOT_MAIL))


def parse_all(files: list[Path], inbox_id: int) -> tuple[list[Any], list[QuarantinedMail], dict[str, float]]:
    """Parse every file with a per-message time limit; what failed is quarantined."""
    parsed, quarantined, took = [], [], {}
    with ThreadPoolExecutor(max_workers=1) as pool:
        for path in files:
            raw = path.read_bytes()
            started = time.monotonic()
            future = pool.submit(parse_mail, raw, inbox_id=inbox_id)
            try:
                parsed.append((path, future.result(timeout=PER_MESSAGE_SECONDS)))
            except MailParseError as exc:
                quarantined.append(QuarantinedMail(str(exc), raw, source_ref=f"file:{path.relative_to(CORPUS)}"))
            except FutureTimeout:
                pytest.fail(f"{path} did not parse within {PER_MESSAGE_SECONDS}s")
            took[str(path.relative_to(CORPUS))] = time.monotonic() - started
    return parsed, quarantined, took


async def test_every_corpus_mail_is_ingested_or_quarantined_with_a_reason(client, tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("email", email="help@shop.example")
    files = corpus_files()
    assert len(files) > 150
    parsed, quarantined, took = parse_all(files, inbox_id)
    messages = [p.message for _, p in parsed if not p.own]
    for start in range(0, len(messages), 50):
        await ingest_messages(runtime.db, messages[start:start + 50], store=runtime.store)
    async with runtime.db.write_session() as session:
        await store_quarantined(session, runtime.store, inbox_id, quarantined)
    async with runtime.db.read_session() as session:
        stored = await session.scalar(select(func.count()).select_from(Message).where(Message.inbox_id == inbox_id))
        rows = list(await session.scalars(select(QuarantinedMessage).where(QuarantinedMessage.inbox_id == inbox_id)))
    distinct = len({m.source_id for m in messages})
    assert stored == distinct  # the same Message-ID twice is one message
    assert len(rows) == len(quarantined)
    assert all(row.error and row.raw_path and runtime.store.path(row.raw_path).read_bytes() for row in rows)
    assert len(quarantined) <= 3, [q.reason for q in quarantined]
    slowest = max(took.items(), key=lambda item: item[1])
    print(f"\n{len(files)} corpus mails: {len(messages)} parsed ({distinct} distinct Message-IDs), "
          f"{len(quarantined)} quarantined ({'; '.join(q.reason for q in quarantined)}); slowest {slowest[0]} "
          f"{slowest[1]:.2f}s")
    listed = await client.get(tenant.path(f"/inboxes/{inbox_id}/quarantine"), headers=tenant.headers)
    assert listed.status_code == 200
    assert sorted(r["error"] for r in listed.json()["payload"]) == sorted(q.reason for q in quarantined)
    if rows:
        raw = await client.get(tenant.path(f"/inboxes/{inbox_id}/quarantine/{rows[0].id}/raw"), headers=tenant.headers)
        assert raw.status_code == 200 and raw.content == runtime.store.path(rows[0].raw_path).read_bytes()


@pytest.mark.parametrize("path", sorted((CORPUS / "flanker" / "bounce").glob("*.eml")) if CORPUS.is_dir() else [],
                         ids=lambda p: p.name)
def test_bounces_are_recognised(path: Path) -> None:
    message = parse_mail(path.read_bytes(), inbox_id=1).message
    assert message.automatic and message.metadata["automatic"] == "bounce"


@pytest.mark.parametrize("path", sorted((CORPUS / "flanker" / "complaints").glob("*.eml")) if CORPUS.is_dir() else [],
                         ids=lambda p: p.name)
def test_complaints_are_recognised(path: Path) -> None:
    message = parse_mail(path.read_bytes(), inbox_id=1).message
    assert message.automatic and message.metadata["automatic"] == "complaint"


def test_mail_people_wrote_is_not_automatic() -> None:
    folder = CORPUS / "talon-replies" / "standard_replies"
    assert not [p.name for p in folder.glob("*.eml") if parse_mail(p.read_bytes(), inbox_id=1).message.automatic]


#: Replies whose new text we do not find, and why (the match rate is in the test output).
REPLY_MISSES = {
    "android.eml": "the quote header is Russian (\u043d\u0430\u043f\u0438\u0441\u0430\u043b:), a language "
                   "mail-parser-reply does not know",
    "thunderbird.eml": "bottom-posted: the new text follows the quote, mail-parser-reply keeps the quote",
}


def _reply_cases() -> list[Any]:
    folder = CORPUS / "talon-replies" / "standard_replies"
    cases = []
    for path in sorted(folder.glob("*.eml")) if folder.is_dir() else []:
        marks = [pytest.mark.xfail(reason=REPLY_MISSES[path.name], strict=True)] if path.name in REPLY_MISSES else []
        cases.append(pytest.param(path, marks=marks, id=path.name))
    return cases


@pytest.mark.parametrize("path", _reply_cases())
def test_reply_text_matches_the_expected_new_text(path: Path) -> None:
    # As in the corpus's origin: ``<name>_reply_text`` where given, else "Hello".
    expected_file = path.with_name(path.stem + "_reply_text")
    expected = expected_file.read_text() if expected_file.exists() else "Hello"
    message = parse_mail(path.read_bytes(), inbox_id=1).message
    assert " ".join((message.text or "").split()) == " ".join(expected.split())


def _yml_field(text: str, name: str) -> str | None:
    """A top-level scalar of Zammad's expectation file (plain, single or double quoted)."""
    match = re.search(rf"^{name}: (.*)$", text, re.M)
    if match is None:
        return None
    value = match.group(1).strip()
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
    return value


#: Where our reading differs from Zammad's on purpose, or the corpus copy is not the original.
ZAMMAD_DIFFERENCES = {
    ("mail050.box", "from"): "Zammad records no address for 'From: <John.Smith@example.com>'; we take it",
    ("mail077.box", "from"): "Zammad records no address for 'From: <John.Smith@example.com>'; we take it",
    ("mail076.box", "from"): "Zammad keeps a stray '>' after a quoted local part; we do not",
    ("mail068.box", "from"): "the file starts with a non-header line and has unindented continuation lines: "
                             "we read it as a mail without headers (it is still ingested, from unknown-sender@invalid)",
    ("mail068.box", "subject"): "as above: no headers are read",
    ("mail089.box", "subject"): "the corpus README: the .box and .yml come from different commits",
    ("mail093.box", "subject"): "the corpus README: the 8-bit Shift_JIS subject was not kept as original bytes",
    ("mail017.box", "subject"): "Zammad's expectation keeps a leading double quote we do not see in the header",
}


def _zammad_cases() -> list[Any]:
    folder = CORPUS / "zammad-mail"
    cases = []
    for box in sorted(folder.glob("*.box")) if folder.is_dir() else []:
        for field in ("from", "subject"):
            reason = ZAMMAD_DIFFERENCES.get((box.name, field))
            marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
            cases.append(pytest.param(box, field, marks=marks, id=f"{box.name}-{field}"))
    return cases


@pytest.mark.parametrize(("box", "field"), _zammad_cases())
def test_sender_and_subject_agree_with_zammad(box: Path, field: str) -> None:
    expected_text = box.with_suffix(".yml").read_text(encoding="utf-8")
    message = parse_mail(box.read_bytes(), inbox_id=1).message
    if field == "from":
        expected = (_yml_field(expected_text, "from_email") or "").lower()
        assert (message.sender.email or message.sender.source_id) == expected
    else:
        expected_subject = _yml_field(expected_text, "subject")
        if expected_subject is None:
            pytest.skip("no subject in the expectation file")
        assert (message.subject or "").strip() == expected_subject.strip()


async def test_a_mail_that_parses_too_long_is_quarantined_and_the_others_are_not(monkeypatch):
    from connectors.email import connector, parser_pool
    from tests.hanging_parser import SLOW_MARK, parse_many_or_hang

    quick = [(CORPUS / "flanker" / "text-only.eml").read_bytes(), (CORPUS / "flanker" / "iphone.eml").read_bytes()]
    slow = SLOW_MARK + b"\r\n" + quick[0]
    monkeypatch.setattr(connector, "parse_many", parse_many_or_hang)
    monkeypatch.setattr(connector, "PARSE_TIMEOUT", 3.0)
    pool = parser_pool.ParserPool(workers=1)
    monkeypatch.setattr(parser_pool, "POOL", pool)
    try:
        await pool.start()
        (first_worker,) = pool._executor._processes.values()
        results = await connector.parse_batch([quick[0], slow, quick[1]], inbox_id=1, max_part_bytes=10**7,
                                              own_domains=frozenset())
        assert isinstance(results[1], MailParseError) and "longer than 3s" in str(results[1])
        assert not isinstance(results[0], MailParseError) and not isinstance(results[2], MailParseError)
        assert results[2].message.source_id != results[0].message.source_id
        # The runaway parse was stopped, not abandoned: its worker process is gone.
        first_worker.join(timeout=5)
        assert not first_worker.is_alive()
    finally:
        pool.close()


async def test_mail_is_parsed_after_the_parsers_worker_was_killed_between_batches(monkeypatch):
    """A worker killed from outside (the kernel's out-of-memory killer, an operator)
    breaks the pool; the next batch gets a new worker and every mail is parsed."""
    import os
    import signal

    from connectors.email import connector, parser_pool

    quick = [(CORPUS / "flanker" / "text-only.eml").read_bytes(), (CORPUS / "flanker" / "iphone.eml").read_bytes()]
    pool = parser_pool.ParserPool(workers=1)
    monkeypatch.setattr(parser_pool, "POOL", pool)
    try:
        await pool.start()
        (worker,) = pool._executor._processes.values()
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(timeout=5)
        results = await connector.parse_batch(quick, inbox_id=1, max_part_bytes=10**7, own_domains=frozenset())
        assert [isinstance(r, MailParseError) for r in results] == [False, False]
        assert pool._executor is not None and worker.pid not in pool._executor._processes
    finally:
        pool.close()
