"""Search over messages and contacts in any script (Thai, Chinese, Vietnamese, Persian …).

Thai and Chinese write without spaces between words, so a word tokenizer finds
nothing; both databases search by *substring*, backed by a trigram index:

* SQLite: FTS5 tables with the ``trigram`` tokenizer (``messages_fts`` over
  ``messages.content``, ``contacts_fts`` over name, e-mail, phone and identifier), kept
  in step with their tables by triggers (migration 0011). A quoted FTS5 phrase of three
  or more characters is a case-insensitive substring match.
* PostgreSQL: ``pg_trgm`` GIN indexes; ``ILIKE '%q%'`` uses them.

A query shorter than three characters has no trigram, so it falls back to a plain
``LIKE`` scan (two-character Chinese words such as 退款 still work, just unindexed).
Queries are normalized to NFC; text stored in either NFC or NFD is found (Vietnamese
typed on some systems arrives decomposed).
"""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import ColumnElement, Integer, column, false, or_, select, text

from app.errors import Invalid
from app.models import Contact, Message

#: Shortest query the trigram indexes can answer; shorter ones scan.
MIN_INDEXED_CHARS = 3
#: Longest query accepted (characters).
MAX_QUERY_CHARS = 200
#: Objects made by migration 0011 outside the models (Alembic's comparison skips them).
SEARCH_SCHEMA_OBJECTS = frozenset({
    "messages_fts", "contacts_fts", "ix_messages_content_trgm", "ix_contacts_search_trgm",
})
_FTS_SHADOW = re.compile(r"^(messages|contacts)_fts(_(data|idx|content|docsize|config))?$")


def is_search_object(name: str | None) -> bool:
    """True for the FTS tables (and their shadow tables) and trigram indexes of search."""
    return bool(name) and (name in SEARCH_SCHEMA_OBJECTS or bool(_FTS_SHADOW.match(name or "")))


def alembic_include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic ``include_name`` hook: leave the search objects out of schema comparison."""
    return not (type_ in ("table", "index") and is_search_object(name))


def normalize_query(q: str | None) -> str:
    """The query as searched: NFC, trimmed, inner whitespace collapsed; Invalid if too long."""
    value = " ".join(unicodedata.normalize("NFC", q or "").split())
    if len(value) > MAX_QUERY_CHARS:
        raise Invalid(f"q is longer than {MAX_QUERY_CHARS} characters", field="q")
    return value


def _forms(q: str) -> list[str]:
    """The query in NFC and, where different, NFD (stored text may be either)."""
    forms = [unicodedata.normalize("NFC", q)]
    decomposed = unicodedata.normalize("NFD", q)
    if decomposed != forms[0]:
        forms.append(decomposed)
    return forms


def _like_pattern(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _fts_phrase(forms: list[str]) -> str:
    # A double-quoted FTS5 string is one phrase: no operators, no column filters.
    return " OR ".join('"' + form.replace('"', '""') + '"' for form in forms)


def _fts_rowids(table: str, forms: list[str], param: str):  # type: ignore[no-untyped-def]
    return (
        text(f"SELECT rowid FROM {table} WHERE {table} MATCH :{param}")
        .bindparams(**{param: _fts_phrase(forms)})
        .columns(column("rowid", Integer))
    )


def _substring(columns: list[ColumnElement[str | None]], forms: list[str], dialect: str) -> ColumnElement[bool]:
    clauses = []
    for form in forms:
        pattern = _like_pattern(form)
        for col in columns:
            clauses.append(
                col.ilike(pattern, escape="\\") if dialect == "postgresql" else col.like(pattern, escape="\\")
            )
    return or_(*clauses)


def message_condition(q: str, dialect: str) -> ColumnElement[bool]:
    """A WHERE clause on ``Message`` matching messages whose text contains ``q``."""
    if not q:
        return false()
    forms = _forms(q)
    if dialect == "sqlite" and len(q) >= MIN_INDEXED_CHARS:
        return Message.id.in_(_fts_rowids("messages_fts", forms, "message_q"))
    return _substring([Message.content], forms, dialect)


def contact_condition(q: str, dialect: str) -> ColumnElement[bool]:
    """A WHERE clause on ``Contact``: name, e-mail, phone or identifier contains ``q``."""
    if not q:
        return false()
    forms = _forms(q)
    if dialect == "sqlite" and len(q) >= MIN_INDEXED_CHARS:
        return Contact.id.in_(_fts_rowids("contacts_fts", forms, "contact_q"))
    return _substring([Contact.name, Contact.email, Contact.phone_number, Contact.identifier], forms, dialect)


def conversation_condition(q: str, dialect: str, account_id: int, conversation_id: ColumnElement[int],
                           contact_id: ColumnElement[int], display_id: ColumnElement[int]) -> ColumnElement[bool]:
    """Conversations with a matching message or contact, or whose number is ``q`` (``#12``)."""
    clauses = [
        conversation_id.in_(
            select(Message.conversation_id).where(Message.account_id == account_id, message_condition(q, dialect))
        ),
        contact_id.in_(select(Contact.id).where(Contact.account_id == account_id, contact_condition(q, dialect))),
    ]
    number = q.lstrip("#")
    if number.isdecimal() and len(number) < 12:
        clauses.append(display_id == int(number))
    return or_(*clauses)
