"""A believable demo account, written through the real ingest path.

Several inboxes (e-mail, live chat, Telegram, LINE, Messenger, Shopee, Lazada, API) with
customers writing in English, Thai, Vietnamese, Persian and Chinese, so a newcomer
sees a living inbox. Running it twice does nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service as auth_service
from app.auth.principal import Principal
from app.models import Account, Conversation, utcnow
from app.runtime import Runtime
from app.tickets import catalog, conversations, inboxes, outbox, replies, teams
from app.tickets.ingest import ingest_batch
from connectors.base import InboundMessage, SenderIdentity

DEMO_ACCOUNT = "Postroom Demo Shop"
DEMO_ADMIN_EMAIL = "admin@demo.postroom.dev"
DEMO_PASSWORD = "postroom-demo"


@dataclass(frozen=True)
class DemoLogin:
    """How to log in to the demo account."""

    account_id: int
    email: str
    password: str
    access_token: str | None


# (inbox key, sender id, name, email, thread, [(minutes ago, text)], labels, reply)
_CONVERSATIONS = [
    ("email", "maria@example.com", "Maria Jensen", "maria@example.com", "order-1042",
     [(190, "Hi, my order #1042 hasn't arrived yet. Could you check the tracking?")],
     ["shipping"], "Hi Maria, I'm checking with the courier now and will update you today."),
    ("line", "U4af4980629", "สมชาย ใจดี", None, None,
     [(50, "สวัสดีครับ สินค้าที่สั่งไปเมื่อวานจะส่งถึงเมื่อไหร่ครับ"),
      (45, "เลขคำสั่งซื้อ TH-88231 ครับ")], ["shipping"], None),
    ("facebook", "6543210987654321", "Nguyễn Thị Hoa", None, None,
     [(30, "Chào shop, áo này còn size M màu xanh không ạ?")], ["pre-sales"], None),
    # Written 30 hours ago: past Messenger's 24-hour window, so a person's reply goes
    # with the HUMAN_AGENT tag (and a bot's is refused).
    ("facebook", "7654321098765432", "Trần Minh Khoa", None, None,
     [(30 * 60, "Shop ơi, mình muốn đổi đơn hàng VN-4410 sang size L được không?")], ["returns"], None),
    ("telegram", "731902211", "سارا احمدی", None, None,
     [(1300, "سلام، آیا امکان ارسال به تهران وجود دارد؟ هزینه ارسال چقدر است؟")],
     ["shipping"], None),
    ("web_widget", "visitor-7d2c", "王芳", "wangfang@example.cn", None,
     [(15, "你好，我想退货，订单号是 CN-5521，请问流程是什么？")], ["returns"], None),
    ("shopee", "buyer-1839201938475629173", "lina_shop_fan", None, "shopee-conv-880021",
     [(1380, "Hi seller, I received the wrong colour. Can I exchange it?")],
     ["returns", "marketplace"], None),
    ("shopee", "buyer-1839201938475630001", "thanh.tran", None, "shopee-conv-880022",
     [(600, "Shop ơi, khi nào có hàng lại mẫu này?")], ["marketplace"], None),
    ("lazada", "lzd-300118842", "Nguyễn Văn An", None, "lzd-session-300118842",
     [(1700, "Shop ơi, đơn hàng của mình bị giao thiếu một món."),
      (1690, "Mình gửi ảnh gói hàng rồi nhé.")], ["returns", "marketplace"], None),
    ("lazada", "lzd-300120577", "ปิยะพร", None, "lzd-session-300120577",
     [(45, "สินค้ารุ่นนี้มีสีดำไหมคะ")], ["pre-sales", "marketplace"], None),
    ("email", "ahmad.karimi@example.ir", "احمد کریمی", "ahmad.karimi@example.ir", "invoice-77",
     [(2000, "لطفاً فاکتور سفارش شماره ۷۷ را برای من ارسال کنید."),
      (1900, "ممنون از پاسخ سریع شما")], ["billing"],
     "سلام احمد، فاکتور پیوست شد. با تشکر."),
    ("email", "somchai.w@example.co.th", "สมชาย วงศ์ใหญ่", "somchai.w@example.co.th", "th-order-5501",
     [(240, "สวัสดีครับ ได้รับสินค้าแล้วแต่กล่องบุบ ขอเปลี่ยนสินค้าได้ไหมครับ"),
      (230, "แนบรูปถ่ายกล่องมาให้แล้วครับ")], ["returns"], None),
    ("email", "li.wei@example.cn", "李伟", "li.wei@example.cn", "cn-invoice-3310",
     [(75, "您好，请问可以开增值税发票吗？订单号 CN-3310。")], ["billing"],
     "您好，可以的，发票将在三个工作日内发送到您的邮箱。"),
    ("api", "crm-55012", "Tom Becker", "tom.becker@example.de", None,
     [(5, "Can I change the delivery address for order 2291?")], [], None),
]

_INBOXES = {
    "email": ("Support e-mail", {"type": "email", "email": "support@demo.postroom.dev"}),
    "web_widget": ("Website chat", {"type": "web_widget", "website_url": "https://shop.example"}),
    "telegram": ("Telegram", {"type": "telegram"}),
    "line": ("LINE Official Account", {"type": "line"}),
    "facebook": ("Facebook Messenger", {"type": "facebook"}),
    "shopee": ("Shopee store", {"type": "shopee"}),
    "lazada": ("Lazada store", {"type": "lazada"}),
    "api": ("CRM bridge (API)", {"type": "api"}),
}


async def seed_demo(runtime: Runtime) -> DemoLogin:
    """Create the demo account unless it exists; returns how to log in."""
    async with runtime.db.write_session() as session:
        existing = await session.scalar(select(Account).where(Account.name == DEMO_ACCOUNT))
        if existing is not None:
            return DemoLogin(existing.id, DEMO_ADMIN_EMAIL, DEMO_PASSWORD, None)
        account = await auth_service.create_account(session, DEMO_ACCOUNT)
        admin = await auth_service.create_user(
            session, account.id, email=DEMO_ADMIN_EMAIL, name="Ploy (admin)",
            role="administrator", password=DEMO_PASSWORD,
        )
        agent = await auth_service.create_user(
            session, account.id, email="minh@demo.postroom.dev", name="Minh", role="agent",
            password=DEMO_PASSWORD,
        )
        boxes = {}
        for key, (name, channel) in _INBOXES.items():
            boxes[key] = await inboxes.create_inbox(session, runtime.box, account.id, name=name, channel=channel)
        await inboxes.set_members(session, boxes["facebook"], [agent.user.id])
        await inboxes.add_members(session, boxes["shopee"], [agent.user.id])
        await inboxes.add_members(session, boxes["lazada"], [agent.user.id])
        team = await teams.save_team(session, account.id, None, name="Marketplace", description="Shopee and Lazada buyers")
        await teams.change_members(session, team, [agent.user.id], add=True)
        for title, color in (("shipping", "#2f80ed"), ("returns", "#eb5757"), ("billing", "#f2c94c"),
                             ("pre-sales", "#27ae60"), ("marketplace", "#9b51e0")):
            await catalog.save_label(session, account.id, None, {"title": title, "color": color})
        await catalog.save_canned(session, account.id, None, {"short_code": "thanks", "content": "Thank you for writing to us!"})
        await catalog.save_canned(session, account.id, None, {"short_code": "tracking", "content": "Here is your tracking link: "})

        now = utcnow()
        principal = Principal(user=admin.user, account_id=account.id, inbox_ids=frozenset())
        for n, (key, sender_id, name, email, thread, lines, labels, reply) in enumerate(_CONVERSATIONS):
            inbound = [
                InboundMessage(
                    inbox_id=boxes[key].id,
                    source_id=f"demo-{n}-{i}",
                    thread_key=thread,
                    sender=SenderIdentity(source_id=sender_id, name=name, email=email),
                    text=text,
                    sent_at=now - timedelta(minutes=minutes),
                    conversation_attributes={
                        "order_id": thread.upper() if key == "shopee" else thread.rsplit("-", 1)[-1],
                        "marketplace": key} if key in ("shopee", "lazada") and thread else {},
                )
                for i, (minutes, text) in enumerate(lines)
            ]
            results = await ingest_batch(session, inbound, store=runtime.store, now=now)
            conversation = await conversations.get_conversation(session, principal, await _display_id(session, results[0].conversation_id))
            if labels:
                await conversations.set_labels(session, conversation, labels)
            if reply:
                sent, _ = await replies.create_message(session, principal, conversation, content=reply)
                if sent.status == "pending":  # demo history: delivered long ago (the demo has no mail server)
                    await outbox.mark_sent(session, sent.id, f"demo-reply-{n}@demo.postroom.dev")
            if key in ("shopee", "lazada"):
                await conversations.assign(session, principal, conversation, team_id=team.id)
        return DemoLogin(account.id, DEMO_ADMIN_EMAIL, DEMO_PASSWORD, admin.access_token)


async def _display_id(session: AsyncSession, conversation_id: int) -> int:
    conversation = await session.get(Conversation, conversation_id)
    assert conversation is not None
    return conversation.display_id
