"""The inbox page's search, reply window, composer extras, contact panel, actions,
seller view and notifications, in a real browser (Debian's Chromium; skips without it)."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx

from app.models import utcnow
from app.tickets.ingest import ingest_messages
from connectors.base import InboundMessage, SenderIdentity
from tests.browser.test_inbox import browser, expect, scene, sign_in, until  # noqa: F401  (fixtures)

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def _errors(page) -> list[str]:
    """The page's errors, less the e-mail frame refusing the seeded mail's script and image (the point of it)."""
    return [e for e in page.errors if "about:srcdoc" not in e and '"img-src https: data:"' not in e]


async def _ingest(runtime, inbox_id: int, sender: str, name: str, text: str, *, ago: timedelta,
                  thread: str | None = None, attributes: dict | None = None, email: str | None = None) -> None:
    await ingest_messages(runtime.db, [InboundMessage(
        inbox_id=inbox_id, source_id=f"{sender}-{text[:12]}-{ago.total_seconds()}", thread_key=thread,
        sender=SenderIdentity(source_id=sender, name=name, email=email), text=text, sent_at=utcnow() - ago,
        conversation_attributes=attributes or {})])


async def test_search_box_finds_thai_chinese_persian_and_vietnamese(scene):
    page = await sign_in(scene)
    rows = page.locator(".conv-row")
    await expect(rows).to_have_count(5)
    search = page.get_by_role("searchbox", name="Search")
    for query, name in (("ส่งถึง", "สมชาย ใจดี"), ("退货", "王芳"), ("تهران", "سارا احمدی"), ("màu xanh", "Nguyễn Thị Hoa")):
        await search.fill(query)
        await expect(rows).to_have_count(1)
        await expect(rows.first.locator(".row-name")).to_have_text(name)
        await expect(page.locator("#search-note")).to_have_text("1 conversations found")
    await search.fill("ไม่มีอยู่จริง")
    await expect(rows).to_have_count(0)
    await expect(page.locator("#search-note")).to_contain_text("Nothing found")
    # Esc clears the search and brings the list back; ↓ from the box opens the first result.
    await search.press("Escape")
    await expect(rows).to_have_count(5)
    await search.fill("CN-5521")
    await expect(rows).to_have_count(1)
    await search.press("ArrowDown")
    await expect(page.locator("#conv-title")).to_contain_text("王芳")
    assert _errors(page) == []
    await page.context.close()


async def test_reply_window_block_shows_on_an_expired_messenger_conversation(scene, runtime):
    fb = scene.inboxes["facebook"]
    await _ingest(runtime, fb, "psid-old", "Old Buyer", "Is this still available?", ago=timedelta(days=9))
    await _ingest(runtime, fb, "psid-tag", "Tagged Buyer", "Any update on my parcel?", ago=timedelta(days=2))
    page = await sign_in(scene)
    window = page.locator("#reply-window")

    # Past 24 hours and past the 7-day HUMAN_AGENT allowance: only a private note.
    await page.locator(".conv-row", has_text="Old Buyer").click()
    await expect(window).to_have_attribute("data-state", "closed")
    await expect(window).to_contain_text("Reply window closed")
    await expect(window).to_contain_text("Messenger accepts no free reply now")
    await expect(page.get_by_role("radio", name="Reply")).to_be_disabled()
    await expect(page.get_by_role("radio", name="Private note")).to_be_checked()
    await page.keyboard.press("r")  # the shortcut cannot switch to a reply either
    await expect(page.get_by_role("radio", name="Private note")).to_be_checked()
    await page.locator("#composer-text").fill("Customer went quiet; follow up if they write again")
    await page.locator("#composer-text").press("Enter")
    await expect(page.locator(".msg.note [data-status=sent]")).to_be_visible()

    # Two days old: the window is closed but a person may still answer, tagged.
    await page.locator(".conv-row", has_text="Tagged Buyer").click()
    await expect(window).to_have_attribute("data-state", "tagged")
    await expect(window).to_contain_text("HUMAN_AGENT")
    await expect(page.get_by_role("radio", name="Reply")).to_be_enabled()
    await expect(page.get_by_role("radio", name="Reply")).to_be_checked()  # the forced note is undone

    # Fresh: replies are free until the window closes.
    await page.locator(".conv-row", has_text="Nguyễn Thị Hoa").click()
    await expect(window).to_have_attribute("data-state", "open")
    await expect(window).to_contain_text("Free replies possible until")
    assert _errors(page) == []
    await page.context.close()


async def test_canned_responses_attachments_and_contact_panel(scene, runtime, tmp_path):
    email = scene.inboxes["email"]
    async with httpx.AsyncClient(base_url=scene.base, headers=scene.tenant.headers) as http:
        for code, content in (("ship", "เราจัดส่งภายใน 2 วันทำการค่ะ"), ("refund", "退款将在 3 个工作日内到账。")):
            assert (await http.post(scene.tenant.path("/canned_responses"),
                                    json={"short_code": code, "content": content})).status_code == 200
    await _ingest(runtime, email, "maria@example.com", "Maria Jensen", "Also: can I change the colour?",
                  ago=timedelta(days=3), thread="older-thread", email="maria@example.com",
                  attributes={"order_number": "SO-88412"})
    page = await sign_in(scene)
    await page.locator(".conv-row", has_text="hasn't arrived").click()

    # "/" opens the canned responses; Enter puts the chosen one in the message box.
    box = page.locator("#composer-text")
    await box.press_sequentially("/sh")
    listbox = page.get_by_role("listbox", name="Canned responses")
    await expect(listbox).to_be_visible()
    await expect(listbox.get_by_role("option")).to_have_count(1)
    await box.press("Enter")
    await expect(box).to_have_value("เราจัดส่งภายใน 2 วันทำการค่ะ")
    await expect(listbox).to_be_hidden()

    # A file goes with the reply; the picture is previewed once sent.
    await page.locator("#composer-files").set_input_files([{"name": "receipt.png", "mimeType": "image/png", "buffer": PNG}])
    await expect(page.locator(".chosen-files")).to_contain_text("receipt.png")
    await box.press("Enter")
    sent = page.locator(".msg.outgoing").last
    await expect(sent.locator("[data-status=sent]")).to_be_visible()
    image = sent.locator("img.attachment-image")
    await expect(image).to_have_attribute("src", re.compile("^blob:"))
    assert await image.evaluate("img => img.decode().then(() => img.naturalWidth)") == 1
    await expect(page.locator(".chosen-files li")).to_have_count(0)

    # The contact panel: e-mail, the identity, the earlier conversation and its order number.
    panel = page.locator("#contact-panel")
    await expect(panel.locator(".contact-name")).to_have_text("Maria Jensen")
    await expect(panel.locator(".contact-fields")).to_contain_text("maria@example.com")
    await expect(panel.locator(".identities")).to_contain_text("Support e-mail")
    earlier = panel.locator(".earlier-link")
    await expect(earlier).to_have_count(1)
    await expect(earlier).to_contain_text("change the colour")
    await earlier.click()
    await expect(page.locator("#conversation-attributes")).to_contain_text("SO-88412")
    assert _errors(page) == []
    await page.context.close()


async def test_team_priority_and_snooze_until_a_time(scene):
    async with httpx.AsyncClient(base_url=scene.base, headers=scene.tenant.headers) as http:
        team = (await http.post(scene.tenant.path("/teams"), json={"name": "ฝ่ายขนส่ง"})).json()
    page = await sign_in(scene)
    await page.locator(".conv-row", has_text="สมชาย ใจดี").click()
    conversation = int(await page.locator(".conv-row[aria-current=true]").get_attribute("data-id"))
    current = f"window.postroom.state.conversations.get({conversation})"
    await page.get_by_label("Team").select_option(label="ฝ่ายขนส่ง")
    await until(page, f"{current}.team_id === {team['id']}")  # answered; the header is drawn again
    await page.get_by_label("Priority").select_option("urgent")
    await until(page, f"{current}.priority === 'urgent'")
    await page.locator(".snooze-menu summary").click()
    await page.get_by_label("Snooze until").fill("2031-05-04T09:30")
    await page.locator("#snooze").click()
    await expect(page.locator("#conv-status")).to_contain_text("Snoozed until")
    async with httpx.AsyncClient(base_url=scene.base, headers=scene.tenant.headers) as http:
        saved = (await http.get(scene.tenant.path(f"/conversations/{conversation}"))).json()
    assert (saved["team_id"], saved["priority"], saved["status"]) == (team["id"], "urgent", "snoozed")
    snoozed = await page.evaluate("new Date(2031, 4, 4, 9, 30).getTime() / 1000")
    assert saved["snoozed_until"] == snoozed
    assert _errors(page) == []
    await page.context.close()


async def test_seller_view_orders_at_risk_marketplace_conversations(scene, runtime):
    shopee = await scene.tenant.inbox("shopee", name="Shopee TH")
    await _ingest(runtime, shopee, "buyer-a", "ผู้ซื้อ ก", "สั่งไปสามวันแล้วยังไม่ได้ของ", ago=timedelta(hours=11))
    await _ingest(runtime, shopee, "buyer-b", "ผู้ซื้อ ข", "มีสีแดงไหมคะ", ago=timedelta(hours=2))
    page = await sign_in(scene)
    # The list's rows carry the same countdown.
    row_badge = page.locator(".conv-row", has_text="ผู้ซื้อ ก").locator(".row-countdown")
    await expect(row_badge).to_have_class(re.compile("risk-critical"))
    await expect(row_badge).to_contain_text("left")
    await expect(page.locator(".conv-row", has_text="ผู้ซื้อ ข").locator(".row-countdown")).to_have_class(re.compile("risk-ok"))
    await page.locator("#seller-toggle").click()
    section = page.locator(f".marketplace[data-inbox='{shopee}']")
    await expect(section).to_be_visible()
    await expect(section.locator("h3")).to_contain_text("Shopee TH")
    await expect(section.locator(".scores")).to_contain_text("Response rate, 90 days")
    rows = section.locator(".risk-row")
    await expect(rows).to_have_count(2)
    # Soonest deadline first, coloured by risk: 1 hour left is critical, 10 hours is fine.
    await expect(rows.nth(0)).to_have_class(re.compile("risk-critical"))
    await expect(rows.nth(0).locator(".countdown")).to_contain_text("left")
    await expect(rows.nth(1)).to_have_class(re.compile("risk-ok"))
    await rows.nth(0).click()
    await expect(page.locator("#conv-title")).to_contain_text("ผู้ซื้อ ก")
    await expect(page.locator("#seller-toggle")).to_have_attribute("aria-pressed", "false")
    assert _errors(page) == []
    await page.context.close()


async def test_notifications_are_opt_in_for_new_conversations_and_mentions(scene, runtime):
    page = await sign_in(scene)
    await page.context.grant_permissions(["notifications"], origin=scene.base)
    toggle = page.locator("#notify-toggle")
    await expect(toggle).to_have_attribute("aria-pressed", "false")
    await _ingest(runtime, scene.inboxes["line"], "U-before", "Before Opt-in", "ก่อนเปิดแจ้งเตือน", ago=timedelta(0))
    await expect(page.locator(".conv-row", has_text="Before Opt-in")).to_be_visible()
    assert await page.evaluate("window.postroom.notifications.length") == 0
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-pressed", "true")

    await _ingest(runtime, scene.inboxes["line"], "U-after", "ลูกค้าใหม่", "สวัสดีค่ะ", ago=timedelta(0))
    await until(page, "window.postroom.notifications.some(n => n.title.includes('ลูกค้าใหม่'))")
    # Another agent mentions this one in a private note.
    _, other_token = await scene.tenant.agent(inbox_ids=list(scene.inboxes.values()))
    conversation = int(await page.locator(".conv-row", has_text="ลูกค้าใหม่").get_attribute("data-id"))
    async with httpx.AsyncClient(base_url=scene.base, headers={"api_access_token": other_token}) as http:
        note = await http.post(scene.tenant.path(f"/conversations/{conversation}/messages"),
                               json={"content": "@Admin ช่วยดูเคสนี้หน่อย", "private": True})
        assert note.status_code == 200
    await until(page, f"window.postroom.notifications.some(n => n.title.includes('#{conversation}'))")
    # The choice survives a reload.
    await page.reload()
    await expect(page.locator("#notify-toggle")).to_have_attribute("aria-pressed", "true")
    assert _errors(page) == []
    await page.context.close()


async def test_widget_pre_chat_form_and_leaving_an_email_when_nobody_answers(scene):
    async with httpx.AsyncClient(base_url=scene.base, headers=scene.tenant.headers) as http:
        changed = await http.patch(scene.tenant.path(f"/inboxes/{scene.inboxes['web_widget']}"), json={"channel": {
            "pre_chat_form_enabled": True, "pre_chat_form_options": {"pre_chat_message": "Who are we talking to?"},
            "email_collect_after_seconds": 1}})
        assert changed.status_code == 200, changed.text
    context = await scene.browser.new_context(viewport={"width": 900, "height": 720}, locale="vi-VN")
    page = await context.new_page()
    await page.goto(scene.host_page)
    await page.locator("#postroom-widget .bubble").click()
    frame = page.frame_locator("#postroom-widget iframe")
    # The form comes first (in the visitor's language); a wrong address is refused here.
    await expect(frame.locator("#prechat")).to_be_visible()
    await expect(frame.locator("#prechat-message")).to_have_text("Who are we talking to?")
    await expect(frame.locator("#text")).to_be_hidden()
    await frame.locator("#prechat").get_by_label("Tên").fill("Phạm Thu Trang")
    await frame.locator("#prechat").get_by_label("Email").fill("trang@")
    await frame.locator("#prechat-start").click()
    await expect(frame.locator("#prechat-error")).to_have_text("Vui lòng nhập địa chỉ email hợp lệ.")
    await frame.locator("#prechat").get_by_label("Email").fill("")
    await frame.locator("#prechat-start").click()  # the address is optional here
    await expect(frame.locator("#text")).to_be_visible()
    await frame.locator("#text").fill("Cho mình hỏi phí ship ra Hà Nội?")
    await frame.locator("#text").press("Enter")
    await expect(frame.locator(".msg.visitor [data-status=sent]")).to_have_count(1)
    # Nobody answers within the inbox's wait: the visitor can leave an address.
    await expect(frame.locator("#collect")).to_be_visible(timeout=5000)
    await frame.locator("#collect-email").fill("Trang.Pham@example.vn")
    await frame.locator("#collect-save").click()
    await expect(frame.locator("#collect-text")).to_contain_text("Trang.Pham@example.vn")
    async with httpx.AsyncClient(base_url=scene.base, headers=scene.tenant.headers) as http:
        found = (await http.get(scene.tenant.path("/contacts/search"), params={"q": "Phạm Thu Trang"})).json()
    (contact,) = found["payload"]
    assert contact["email"] == "trang.pham@example.vn"
    assert contact["additional_attributes"]["continuity_via_email"] is True
    # After a reload the form and the request are not shown again.
    await page.reload()
    await page.locator("#postroom-widget .bubble").click()
    await expect(frame.locator("#text")).to_be_visible()
    await expect(frame.locator("#prechat")).to_be_hidden()
    await frame.locator("#text").fill("Còn nữa không?")
    await frame.locator("#text").press("Enter")
    await expect(frame.locator(".msg.visitor [data-status=sent]")).to_have_count(2)
    await page.wait_for_timeout(1500)
    await expect(frame.locator("#collect")).to_be_hidden()
    await context.close()
