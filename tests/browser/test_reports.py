"""The Reports section renders its charts from the reports API, in a real browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest_asyncio

from app.models import Conversation, utcnow
from app.tickets.ingest import ingest_messages
from connectors.base import InboundMessage, SenderIdentity
from tests.browser.test_inbox import CHROMIUM, CHROMIUM_ARGS, PASSWORD, expect, save_screenshot, until, watch_errors

from playwright.async_api import Browser, async_playwright  # noqa: E402  (skipped above when missing)

assert CHROMIUM


@pytest_asyncio.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def seed(runtime, tenant, live_server) -> None:
    """Conversations over the last days on LINE and Telegram, a reply, a resolve with a 4-star answer."""
    line = await tenant.inbox("line", name="LINE Official Account", csat_survey_enabled=True)
    telegram = await tenant.inbox("telegram", name="Telegram")
    now = utcnow()
    results = await ingest_messages(runtime.db, [
        InboundMessage(inbox_id=line if n % 3 else telegram, source_id=f"m{n}",
                       sender=SenderIdentity(source_id=f"buyer-{n}", name=f"ลูกค้า {n}"),
                       text="สวัสดีครับ", sent_at=now - timedelta(days=n % 6, hours=n))
        for n in range(12)])
    async with runtime.db.read_session() as session:
        display = (await session.get(Conversation, results[1].conversation_id)).display_id  # on LINE
    async with httpx.AsyncClient(base_url=live_server, headers=tenant.headers) as http:
        assert (await http.post(tenant.path(f"/conversations/{display}/messages"), json={"content": "ได้เลยครับ"})).status_code == 200
        assert (await http.post(tenant.path(f"/conversations/{display}/toggle_status"), json={"status": "resolved"})).status_code == 200
        rows = (await http.get(tenant.path(f"/conversations/{display}/messages"))).json()
        rows = rows["payload"] if isinstance(rows, dict) else rows
        uuid = next(m for m in rows if m["content_type"] == "input_csat")["content_attributes"]["survey_uuid"]
        assert (await http.post(f"/survey/responses/{uuid}", json={"rating": 4})).status_code == 200


async def test_reports_page_draws_charts_with_data_in_the_interface_language(live_server, tenants, runtime, browser,
                                                                         tmp_path):
    tenant = await tenants.new("Report Shop")
    await seed(runtime, tenant, live_server)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors = watch_errors(page)
    await page.goto(live_server + "/")
    await page.get_by_label("Email").fill(tenant.admin_email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.locator("#reports-link").click()
    await expect(page.locator("#reports h1")).to_have_text("Reports")
    # Summary figures come from the API: 12 conversations, 12 incoming messages.
    await expect(page.locator('[data-metric="conversations_count"] dd')).to_have_text("12")
    # The volume line chart has one point per day of the period.
    points = await page.locator('#chart-volume polyline[data-series="conversations"]').get_attribute("points")
    assert len(points.split()) >= 30
    # The heat map has 7 × 24 cells, twelve messages spread over them.
    cells = page.locator("#chart-heatmap rect.cell")
    await expect(cells).to_have_count(168)
    total = await page.evaluate(
        "[...document.querySelectorAll('#chart-heatmap rect.cell')].reduce((s, c) => s + Number(c.dataset.value), 0)")
    assert total == 12
    # Channels and satisfaction.
    await expect(page.locator("#chart-channels text").first).to_have_text("line")
    assert await page.locator('#chart-csat rect.bar[data-value="1"]').count() == 1
    await expect(page.locator("#chart-csat")).to_be_visible()
    await page.screenshot(path=tmp_path / "reports.png", full_page=True)
    save_screenshot(tmp_path / "reports.png", "reports.png")
    # Back to the inbox, switch to Thai, and the Reports page speaks Thai.
    await page.locator("#reports-back").click()
    await expect(page.locator("#language")).to_be_visible()
    await page.locator("#language").select_option("th")
    await until(page, "!!document.querySelector('#reports-link') && document.querySelector('#reports-link').textContent === 'รายงาน'")
    await page.locator("#reports-link").click()
    await expect(page.locator("#reports h1")).to_have_text("รายงาน")
    await expect(page.locator("#chart-heatmap")).to_be_visible()
    assert not [e for e in errors if "favicon" not in e], errors
    await context.close()
