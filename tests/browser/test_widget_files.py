"""Files in the live-chat widget, in a real browser (Debian's Chromium; skips without it)."""

from __future__ import annotations

import re

from tests.browser.test_inbox import browser, expect, open_widget, scene, sign_in, until  # noqa: F401  (fixtures)
from tests.browser.test_inbox_features import PNG, _errors


async def test_visitor_sends_a_picture_and_sees_the_agents_files(scene):
    agent = await sign_in(scene)
    visitor = await (await scene.browser.new_context()).new_page()
    visitor_errors: list[str] = []
    visitor.on("pageerror", lambda error: visitor_errors.append(str(error)))
    frame = await open_widget(scene, visitor)

    # The visitor picks a picture, adds a line and sends both as one message.
    await frame.locator("#files").set_input_files([{"name": "ใบเสร็จ.png", "mimeType": "image/png", "buffer": PNG}])
    await expect(frame.locator("#chosen-files li")).to_contain_text("ใบเสร็จ.png")
    await frame.locator("#text").fill("Here is my receipt")
    await frame.locator("#text").press("Enter")
    mine = frame.locator(".msg.visitor", has_text="Here is my receipt")
    await expect(mine.locator("[data-status=sent]")).to_be_visible()
    await expect(frame.locator("#chosen-files li")).to_have_count(0)
    picture = mine.locator("img.attachment-image")
    await expect(picture).to_have_attribute("src", re.compile("^blob:"))
    assert await picture.evaluate("img => img.decode().then(() => img.naturalWidth)") == 1

    # The agent gets the picture, with a preview, and answers with a picture and a PDF.
    row = agent.locator(".conv-row", has_text="Here is my receipt")
    await row.click()
    await expect(agent.locator(".msg.incoming img.attachment-image")).to_be_visible()
    await agent.locator("#composer-files").set_input_files([
        {"name": "map.png", "mimeType": "image/png", "buffer": PNG},
        {"name": "คู่มือ.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 guide"},
    ])
    await agent.locator("#composer-text").fill("Here is the way to our shop")
    await agent.locator("#composer-text").press("Enter")

    # The visitor sees the reply live: the picture as a preview, the PDF as a link that downloads it.
    reply = frame.locator(".msg.agent", has_text="Here is the way to our shop")
    await expect(reply.locator("img.attachment-image")).to_have_attribute("src", re.compile("^blob:"))
    link = reply.locator("a.attachment-link", has_text="คู่มือ.pdf")
    await expect(link).to_be_visible()
    async with visitor.expect_download() as info:
        await link.click()
    download = await info.value
    assert download.suggested_filename == "คู่มือ.pdf"
    assert open(await download.path(), "rb").read() == b"%PDF-1.4 guide"

    # (That no other visitor can fetch these files is tested in tests/test_widget_files.py.)
    assert visitor_errors == [] and _errors(agent) == []
    await visitor.context.close()
    await agent.context.close()
