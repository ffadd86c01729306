"""Who is calling, and what they may see."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, true

from app.models import User


@dataclass(frozen=True)
class Principal:
    """An authenticated caller, bound to one account.

    Administrators see their whole account; agents see the conversations of the inboxes
    they are members of (``inbox_ids``).
    """

    user: User
    account_id: int
    inbox_ids: frozenset[int]

    @property
    def is_admin(self) -> bool:
        """True for an administrator of the account."""
        return self.user.role == "administrator"

    @property
    def is_bot(self) -> bool:
        """True for an agent bot's token."""
        return self.user.role == "agent_bot"

    def can_see_inbox(self, inbox_id: int) -> bool:
        """Whether conversations of this inbox are visible to the caller."""
        return self.is_admin or inbox_id in self.inbox_ids

    def inbox_filter(self, column: ColumnElement[int]) -> ColumnElement[bool]:
        """A WHERE clause limiting ``column`` (an inbox id) to what the caller may see."""
        if self.is_admin:
            return true()
        return column.in_(sorted(self.inbox_ids))
