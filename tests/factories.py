"""Builders of test data, written through the services (never raw SQL)."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

from app.auth import service as auth_service
from app.runtime import Runtime
from app.tickets import inboxes

_counter = itertools.count(1)


@dataclass
class Tenant:
    """A fresh account with an administrator."""

    account_id: int
    admin_id: int
    admin_email: str
    token: str
    runtime: Runtime

    @property
    def headers(self) -> dict[str, str]:
        return {"api_access_token": self.token}

    def path(self, suffix: str) -> str:
        return f"/api/v1/accounts/{self.account_id}{suffix}"

    async def inbox(self, channel_type: str = "api", name: str | None = None, **channel: Any) -> int:
        async with self.runtime.db.write_session() as session:
            inbox = await inboxes.create_inbox(
                session, self.runtime.box, self.account_id,
                name=name or f"{channel_type} inbox", channel={"type": channel_type, **channel},
            )
        return inbox.id

    async def agent(self, *, inbox_ids: list[int] | None = None, role: str = "agent") -> tuple[int, str]:
        async with self.runtime.db.write_session() as session:
            new = await auth_service.create_user(
                session, self.account_id, email=f"agent-{uuid.uuid4().hex[:10]}@example.com",
                name=f"Agent {next(_counter)}", role=role, password="agent-password",
            )
            for inbox_id in inbox_ids or []:
                inbox = await inboxes.get_inbox(session, self.account_id, inbox_id)
                await inboxes.add_members(session, inbox, [new.user.id])
        return new.user.id, new.access_token


class TenantFactory:
    """Makes isolated accounts for tests."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def new(self, name: str | None = None) -> Tenant:
        email = f"admin-{uuid.uuid4().hex[:12]}@example.com"
        async with self.runtime.db.write_session() as session:
            account = await auth_service.create_account(session, name or f"Account {next(_counter)}")
            new = await auth_service.create_user(
                session, account.id, email=email, name="Admin", role="administrator", password="admin-password"
            )
        return Tenant(account.id, new.user.id, email, new.access_token, self.runtime)
