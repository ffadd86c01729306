"""The inbox list's sort control, in a real browser (Debian's Chromium; skips without it)."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update

from app.models import Conversation, Inbox, utcnow
from tests.browser.test_inbox import PERSIAN_NAME, browser, expect, scene, sign_in  # noqa: F401  (fixtures)


async def _set_due(runtime, scene, channel: str, minutes: int) -> None:
    async with runtime.db.write_session() as session:
        inbox = await session.get(Inbox, scene.inboxes[channel])
        await session.execute(update(Conversation).where(Conversation.inbox_id == inbox.id)
                              .values(next_due_at=utcnow() + timedelta(minutes=minutes)))


async def test_sort_by_time_left_to_reply_and_back(scene, runtime):
    # Two conversations have a running clock: Persian (Telegram) due in 10 minutes, Thai (LINE) in 2 hours.
    await _set_due(runtime, scene, "telegram", 10)
    await _set_due(runtime, scene, "line", 120)
    page = await sign_in(scene)
    names = page.locator(".conv-row .row-name")
    by_activity = ["王芳", PERSIAN_NAME, "Nguyễn Thị Hoa", "สมชาย ใจดี", "Maria Jensen"]
    await expect(names).to_have_text(by_activity)

    await page.get_by_label("Sort").select_option("sla_due_at_asc")
    # Soonest deadline first; those without a clock after them, oldest conversation first.
    await expect(names).to_have_text([PERSIAN_NAME, "สมชาย ใจดี", "Nguyễn Thị Hoa", "Maria Jensen", "王芳"])
    await expect(page.locator(".conv-row").first.locator(".row-countdown")).to_be_visible()

    # The choice is remembered across a reload.
    await page.reload()
    await expect(page.locator("#root")).to_have_attribute("data-list-rendered", "true")
    await expect(page.get_by_label("Sort")).to_have_value("sla_due_at_asc")
    await expect(names).to_have_text([PERSIAN_NAME, "สมชาย ใจดี", "Nguyễn Thị Hoa", "Maria Jensen", "王芳"])

    # A conversation whose clock became the soonest moves up when its next update arrives on the stream.
    async with runtime.db.read_session() as session:
        maria = await session.scalar(select(Conversation.display_id).where(
            Conversation.inbox_id == scene.inboxes["email"]))
    await _set_due(runtime, scene, "email", 1)
    async with httpx.AsyncClient(base_url=scene.base, headers=scene.tenant.headers) as http:
        answer = await http.post(scene.tenant.path(f"/conversations/{maria}/toggle_priority"), json={"priority": "high"})
        assert answer.status_code == 200
    await expect(names.first).to_have_text("Maria Jensen")

    await page.get_by_label("Sort").select_option("last_activity_at_desc")
    await expect(names.first).to_have_text("王芳")
    # The seeded e-mail's script and image are refused by its sandboxed frame (on purpose); nothing else may fail.
    assert [e for e in page.errors if "about:srcdoc" not in e and "img-src" not in e] == []
    await page.context.close()
