"""Group commit of push channels' webhook calls: calls that come together share a
transaction, and a lone call is not held back."""

from __future__ import annotations

import asyncio
import time

from app.tickets import group_commit
from app.tickets.group_commit import GroupCommitter
from connectors.base import InboundMessage, SenderIdentity, WebhookBatch


def _batch(inbox_id: int, key: str) -> WebhookBatch:
    return WebhookBatch(messages=[InboundMessage(inbox_id=inbox_id, source_id=f"gc-{key}",
                                                 sender=SenderIdentity(source_id=f"gc-sender-{key}"), text=key)])


async def test_calls_that_come_together_share_a_transaction_and_a_lone_call_waits_for_nothing(
        runtime, tenants, monkeypatch):
    monkeypatch.setattr(group_commit, "GATHER_SECONDS", 1.0)  # long enough to see, and to see skipped
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    committer = GroupCommitter(runtime)
    transactions: list[int] = []
    commit = committer._commit

    async def counted(calls):  # type: ignore[no-untyped-def]
        transactions.append(len(calls))
        return await commit(calls)

    committer._commit = counted  # type: ignore[method-assign]
    try:
        # A lone call after a quiet spell is stored at once.
        started = time.monotonic()
        (result,) = await committer.store(inbox_id, _batch(inbox_id, "lone"))
        assert result.status == "created"
        assert time.monotonic() - started < 0.8
        # Calls arriving together share one transaction.
        await asyncio.gather(*(committer.store(inbox_id, _batch(inbox_id, f"pair-{n}")) for n in range(2)))
        assert transactions == [1, 2]
        # Calls now come together: the next transaction waits for a call that arrives
        # shortly after its first one.
        first = asyncio.ensure_future(committer.store(inbox_id, _batch(inbox_id, "early")))
        await asyncio.sleep(0.1)
        late = await committer.store(inbox_id, _batch(inbox_id, "late"))
        assert [r.status for r in (await first) + late] == ["created", "created"]
        assert transactions == [1, 2, 2]
    finally:
        await committer.aclose()
