"""The composer's mention picker, in a real browser (Debian's Chromium; skips without it)."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from app.auth import service as auth_service
from tests.browser.test_inbox import (  # noqa: F401  (fixtures)
    PASSWORD, browser, expect, scene, sign_in, until, watch_errors,
)
from tests.browser.test_inbox_features import _errors


async def _agent(runtime, scene, name: str, email: str) -> int:
    async with runtime.db.write_session() as session:
        made = await auth_service.create_user(session, scene.tenant.account_id, email=email, name=name,
                                              role="administrator", password=PASSWORD)
    return made.user.id


async def test_at_in_a_note_picks_an_agent_and_stores_chatwoots_mention(scene, runtime):
    an = await _agent(runtime, scene, "Nguyễn Văn An", "an@teashop.example")
    anna = await _agent(runtime, scene, "Anna Berg", "anna@teashop.example")
    somsri = await _agent(runtime, scene, "สมศรี ใจดี", "somsri@teashop.example")

    # Anna is signed in elsewhere with notifications on.
    anna_page = await (await scene.browser.new_context()).new_page()
    anna_page.errors = watch_errors(anna_page)
    await anna_page.goto(scene.base + "/")
    await anna_page.get_by_label("Email").fill("anna@teashop.example")
    await anna_page.get_by_label("Password").fill(PASSWORD)
    await anna_page.get_by_role("button", name="Sign in").click()
    await expect(anna_page.locator(".live")).to_have_attribute("data-state", "online")
    await anna_page.context.grant_permissions(["notifications"], origin=scene.base)
    await anna_page.locator("#notify-toggle").click()
    await expect(anna_page.locator("#notify-toggle")).to_have_attribute("aria-pressed", "true")

    page = await sign_in(scene)
    # The agents arrive after the list (the list renders first): wait for the page to be ready.
    await until(page, "window.postroom.state.ready && window.postroom.state.agents.length >= 4")
    await page.locator(".conv-row", has_text="Maria Jensen").click()
    box = page.locator("#composer-text")
    picker = page.locator("#mention-list")

    # In a reply, @ is just a character.
    await box.click()
    await box.press_sequentially("Hi @an")
    await expect(picker).to_be_hidden()
    await box.fill("")

    await page.get_by_role("radio", name="Private note").check()
    await box.press_sequentially("Please check @an")
    options = picker.get_by_role("option")
    # Filtered as typed: a name starting with it first, then a name with a word starting with it.
    await expect(options).to_have_count(2)
    # The radio click blurred the box; that blur's delayed close must not shut the picker
    # the agent has opened since.
    await page.wait_for_timeout(300)
    await expect(options).to_have_count(2)
    await expect(options.nth(0)).to_contain_text("@Anna Berg")
    await expect(options.nth(1)).to_contain_text("@Nguyễn Văn An")
    await expect(box).to_have_attribute("aria-activedescendant", f"mention-{anna}")
    await box.press("ArrowDown")
    await expect(box).to_have_attribute("aria-activedescendant", f"mention-{an}")
    await box.press("Enter")  # inserts, does not send
    await expect(picker).to_be_hidden()
    await expect(box).to_have_value("Please check @Nguyễn Văn An ")
    await box.press_sequentially("and @สม")
    await expect(options).to_have_count(1)
    await box.press("Tab")
    await box.press_sequentially("and @Anna")
    await box.press("Enter")
    await expect(box).to_have_value("Please check @Nguyễn Văn An and @สมศรี ใจดี and @Anna Berg ")
    await box.press_sequentially("@nobody")
    await expect(picker).to_contain_text("No agent matches")
    await box.press("Escape")
    await expect(picker).to_be_hidden()
    await box.press("Enter")  # sends the note

    note = page.locator(".msg.note").last
    await expect(note.locator("[data-status=sent]")).to_be_visible()
    await expect(note.locator(".mention")).to_have_text(["@Nguyễn Văn An", "@สมศรี ใจดี", "@Anna Berg"])

    # Stored the way Chatwoot stores mentions.
    conversation = int(await page.locator(".conv-row", has_text="Maria Jensen").get_attribute("data-id"))
    async with httpx.AsyncClient(base_url=scene.base, headers=scene.tenant.headers) as http:
        stored = (await http.get(scene.tenant.path(f"/conversations/{conversation}/messages"))).json()["payload"][-1]
    assert stored["private"] is True
    assert stored["content"] == (
        f"Please check [@Nguyễn Văn An](mention://user/{an}/{quote('Nguyễn Văn An', safe='')}) "
        f"and [@สมศรี ใจดี](mention://user/{somsri}/{quote('สมศรี ใจดี', safe='')}) "
        f"and [@Anna Berg](mention://user/{anna}/{quote('Anna Berg', safe='')}) @nobody")

    # The mentioned agent is notified, with the mention shown as @Name.
    await until(anna_page, f"window.postroom.notifications.some(n => n.title.includes('#{conversation}'))")
    body = await anna_page.evaluate(
        f"window.postroom.notifications.find(n => n.title.includes('#{conversation}')).body")
    assert body.startswith("Please check @Nguyễn Văn An and @สมศรี ใจดี and @Anna Berg")
    assert _errors(page) == [] and _errors(anna_page) == []
    await anna_page.context.close()
    await page.context.close()
