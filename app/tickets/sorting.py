"""The conversation list's sort orders (Chatwoot's ``sort_by``) and their keyset cursors.

Every order ends with the conversation id, so a cursor names exactly one place in the
list even when many rows share the sort value. Only the leading column of an order may
be NULL; NULLs always come last (as Chatwoot's ``NULLS LAST``). A page that runs past
the last non-NULL value is read in two index range scans: the rest of the non-NULL
rows, then the NULL rows by the remaining columns.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, or_, tuple_

from app.errors import Invalid
from app.models import Conversation

#: Chatwoot stores priority as an integer enum; this is the same ranking.
PRIORITY_RANK = {"low": 1, "medium": 2, "high": 3, "urgent": 4}
DEFAULT_SORT = "last_activity_at_desc"


@dataclass(frozen=True)
class SortColumn:
    """One column of a sort order: how to read it in SQL and from a loaded row."""

    name: str
    descending: bool
    nullable: bool = False
    kind: str = "time"  # "time" (ISO in the cursor) or "int"

    def expr(self) -> ColumnElement[Any]:
        """The SQL expression of the column."""
        if self.name == "priority_rank":
            return case(*((Conversation.priority == p, r) for p, r in PRIORITY_RANK.items()), else_=None)
        return getattr(Conversation, self.name)

    def value(self, conversation: Conversation) -> Any:
        """The column's value on a loaded conversation."""
        if self.name == "priority_rank":
            return PRIORITY_RANK.get(conversation.priority or "")
        return getattr(conversation, self.name)


def _cols(*spec: tuple[str, bool], nullable_lead: bool = False, lead_kind: str = "time") -> tuple[SortColumn, ...]:
    columns = [SortColumn(name, desc) for name, desc in spec]
    if nullable_lead:
        columns[0] = SortColumn(columns[0].name, columns[0].descending, True, lead_kind)
    return (*columns, SortColumn("id", columns[-1].descending, kind="int"))


#: Chatwoot's ``sort_by`` values (with their secondary orders), plus ``sla_due_at_asc``:
#: the soonest running SLA clock first (``conversations.next_due_at``), none last.
SORTS: dict[str, tuple[SortColumn, ...]] = {
    "last_activity_at_desc": _cols(("last_activity_at", True)),
    "last_activity_at_asc": _cols(("last_activity_at", False)),
    "created_at_desc": _cols(("created_at", True)),
    "created_at_asc": _cols(("created_at", False)),
    "priority_desc": _cols(("priority_rank", True), ("last_activity_at", True), nullable_lead=True, lead_kind="int"),
    "priority_asc": _cols(("priority_rank", False), ("last_activity_at", True), nullable_lead=True, lead_kind="int"),
    "waiting_since_asc": _cols(("waiting_since", False), ("created_at", False), nullable_lead=True),
    "waiting_since_desc": _cols(("waiting_since", True), ("created_at", False), nullable_lead=True),
    "sla_due_at_asc": _cols(("next_due_at", False), nullable_lead=True),
}
#: Chatwoot's older names, still accepted.
ALIASES = {
    "latest": "last_activity_at_desc",
    "sort_on_created_at": "created_at_asc",
    "sort_on_priority": "priority_desc",
    "sort_on_waiting_since": "waiting_since_asc",
}


def resolve(sort_by: str | None) -> str:
    """The canonical sort name for ``sort_by``; Invalid when it is not one."""
    if not sort_by:
        return DEFAULT_SORT
    name = ALIASES.get(sort_by, sort_by)
    if name not in SORTS:
        raise Invalid(f"sort_by must be one of {', '.join([*SORTS, *ALIASES])}", field="sort_by")
    return name


def order_by(sort: str, *, non_null_lead: bool = False) -> list[ColumnElement[Any]]:
    """ORDER BY terms; ``non_null_lead`` when the query already excludes NULL leads."""
    terms = []
    for column in SORTS[sort]:
        term = column.expr().desc() if column.descending else column.expr().asc()
        terms.append(term.nulls_last() if column.nullable and not non_null_lead else term)
    return terms


def encode_cursor(sort: str, conversation: Conversation) -> str:
    """An opaque cursor pointing just after ``conversation`` in order ``sort``."""
    values = [_dump(c.value(conversation)) for c in SORTS[sort]]
    # The default order keeps its original two-element cursor, so saved cursors stay valid.
    raw = json.dumps(values if sort == DEFAULT_SORT else [sort, *values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(sort: str, cursor: str) -> list[Any]:
    """The sort values a cursor points after; Invalid if it is not a cursor of ``sort``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(raw, list):
            raise ValueError("not a list")
        if sort != DEFAULT_SORT:
            if not raw or raw[0] != sort:
                raise ValueError("cursor of another sort order")
            raw = raw[1:]
        columns = SORTS[sort]
        if len(raw) != len(columns):
            raise ValueError("wrong length")
        values = [_load(c, v) for c, v in zip(columns, raw, strict=True)]
        if any(v is None for c, v in zip(columns, values, strict=True) if not c.nullable):
            raise ValueError("missing value")
        return values
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise Invalid("not a valid cursor for this sort_by", field="after") from exc


def _dump(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _load(column: SortColumn, value: Any) -> Any:
    if value is None:
        return None
    if column.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("not an integer")
        return value
    return datetime.fromisoformat(value)


def after(columns: tuple[SortColumn, ...], values: list[Any], dialect: str) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the order of ``columns``, none of them NULL."""
    exprs = [c.expr() for c in columns]
    if dialect == "postgresql" and len({c.descending for c in columns}) == 1:
        # A row comparison is one index range condition on PostgreSQL.
        left, right = tuple_(*exprs), tuple_(*values)
        return left < right if columns[0].descending else left > right
    terms = []
    for i, (column, expr) in enumerate(zip(columns, exprs, strict=True)):
        step = expr < values[i] if column.descending else expr > values[i]
        terms.append(and_(*(exprs[j] == values[j] for j in range(i)), step))
    return or_(*terms)
