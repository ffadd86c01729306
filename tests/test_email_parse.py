"""The e-mail parser on hand-made mail: charsets in every script, broken headers that make
the standard library raise, MIME structure, machine mail, threading keys."""

from __future__ import annotations

import base64
import unicodedata

import pytest

from connectors.email.charsets import decode_text
from connectors.email.parse import RAW_NAME, MailParseError, parse_mail
from connectors.email.threading import own_message_id, reply_address, thread_key_for


def mail(headers: str, body: bytes | str = b"Hello\r\n") -> bytes:
    head = headers.strip().replace("\n", "\r\n").encode("utf-8", "surrogateescape")
    data = body.encode() if isinstance(body, str) else body
    return head + b"\r\n\r\n" + data


def parse(raw: bytes, **kwargs: object):  # type: ignore[no-untyped-def]
    return parse_mail(raw, inbox_id=1, **kwargs).message  # type: ignore[arg-type]


@pytest.mark.parametrize(("charset", "text"), [
    ("tis-620", "สวัสดีครับ ขอสอบถามเรื่องการจัดส่ง"),
    ("windows-874", "สั่งซื้อสินค้าแล้วยังไม่ได้รับ"),
    ("gb2312", "您好，我的订单还没有到"),
    ("gbk", "請問這個還有貨嗎？您好"),
    ("gb18030", "退货流程是怎样的？𠀀"),
    ("big5", "請問運費多少？謝謝"),
    ("windows-1256", "سلام، سفارش من هنوز نرسيده است"),  # Arabic yeh: windows-1256 has no Persian one
    ("iso-8859-1", "Grüße aus München"),
])
def test_declared_charsets_come_out_readable(charset: str, text: str) -> None:
    codec = {"windows-874": "cp874", "windows-1256": "cp1256", "tis-620": "tis_620"}.get(charset, charset)
    body = text.encode(codec)
    message = parse(mail(f"From: a@example.com\nSubject: x\nContent-Type: text/plain; charset={charset}\n"
                         "Content-Transfer-Encoding: 8bit", body))
    assert message.text == text


def test_gbk_text_declared_as_gb2312_reads_through_the_superset() -> None:
    text = "镕基与喆"  # characters outside GB2312, common in names
    message = parse(mail("From: a@example.com\nContent-Type: text/plain; charset=gb2312", text.encode("gbk")))
    assert message.text == text


def test_vietnamese_windows_1258_decomposed_is_composed() -> None:
    text = "Xin chào, tôi muốn đổi hàng"
    raw = _cp1258(text)
    assert len(raw) > len(text)  # tone marks written as separate combining characters
    message = parse(mail("From: a@example.com\nContent-Type: text/plain; charset=windows-1258", raw))
    assert message.text == text
    nfd = unicodedata.normalize("NFD", "Tiếng Việt").encode("utf-8")
    assert parse(mail("From: a@example.com\nContent-Type: text/plain; charset=utf-8", nfd)).text == "Tiếng Việt"


def _cp1258(text: str) -> bytes:
    """``text`` as windows-1258 writes it: base letters precomposed, tone marks combining."""
    out = b""
    for char in text:
        try:
            out += char.encode("cp1258")
        except UnicodeEncodeError:
            parts = unicodedata.normalize("NFD", char)
            out += unicodedata.normalize("NFC", parts[:-1]).encode("cp1258") + parts[-1].encode("cp1258")
    return out


def test_undeclared_and_wrong_charsets_are_detected() -> None:
    thai = "ลูกค้าต้องการคืนสินค้า กรุณาติดต่อกลับด้วยครับ ขอบคุณมากครับ"
    message = parse(mail("From: a@example.com\nContent-Type: text/plain", thai.encode("cp874")))
    assert message.text == thai
    persian = "لطفا سفارش شماره 123 را پيگيري کنيد، متشکرم از همکاري شما"
    message = parse(mail("From: a@example.com\nContent-Type: text/plain; charset=utf-8", persian.encode("cp1256")))
    assert message.text == persian
    assert decode_text("ok".encode(), "x-unknown-charset")[0] == "ok"


def test_rfc2047_headers_and_8bit_headers() -> None:
    subject = "=?UTF-8?B?" + base64.b64encode("สอบถามสินค้า 订单".encode()).decode() + "?="
    name = "=?windows-1256?B?" + base64.b64encode("سارا".encode("cp1256")).decode() + "?="
    message = parse(mail(f"From: {name} <Sara@Example.COM>\nSubject: {subject}"))
    assert message.subject == "สอบถามสินค้า 订单"
    assert message.sender.name == "سارا" and message.sender.email == "sara@example.com"
    raw_8bit = "From: Nguyễn Văn A <a@example.com>\nSubject: Đơn hàng của tôi".encode()
    message = parse(raw_8bit.replace(b"\n", b"\r\n") + b"\r\n\r\nbody")
    assert message.subject == "Đơn hàng của tôi" and message.sender.name == "Nguyễn Văn A"


def test_headers_that_make_the_standard_library_raise() -> None:
    raw = mail("From: =?UTF-8?Q?=0AMy_self?= <me@example.org>\n"
               "Message-ID: <[b378dfc50603435b@microsoft.com]>\n"
               "Subject: exchange\n"
               "Content-Type: multipart/mixed; boundary=b\n",
               "--b\r\nContent-Type: text/plain\r\n\r\nbody text\r\n"
               "--b\r\nContent-Type: text/plain; name*\r\nContent-Disposition: attachment; filename*\r\n\r\nfile\r\n--b--\r\n")
    message = parse(raw)
    assert message.sender.email == "me@example.org"
    assert message.source_id == "[b378dfc50603435b@microsoft.com]"
    assert message.text == "body text"


def test_rfc2231_file_names_and_nested_multiparts_with_cid_images_and_winmail() -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"x" * 100
    raw = mail(
        "From: a@example.com\nMessage-ID: <n1@example.com>\nContent-Type: multipart/mixed; boundary=outer",
        "--outer\r\nContent-Type: multipart/related; boundary=rel\r\n\r\n"
        "--rel\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n"
        "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain body\r\n"
        "--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        "<p onclick=\"x()\">HTML <b>body</b><img src=\"cid:logo@x\"></p><script>alert(1)</script>\r\n"
        "--alt--\r\n"
        "--rel\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(png).decode() + "\r\n--rel--\r\n"
        "--outer\r\nContent-Type: application/ms-tnef; name=winmail.dat\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"TNEF").decode() + "\r\n"
        "--outer\r\nContent-Type: application/pdf\r\n"
        "Content-Disposition: attachment; filename*=UTF-8''%E0%B9%83%E0%B8%9A%E0%B9%80%E0%B8%AA%E0%B8%A3%E0%B9%87%E0%B8%88.pdf\r\n\r\n"
        "%PDF\r\n--outer--\r\n")
    message = parse(raw)
    assert message.text == "Plain body"
    assert "<b>body</b>" in message.html and "<script" not in message.html and "onclick" not in message.html
    assert 'src="cid:logo@x"' in message.html
    names = [a.file_name for a in message.attachments]
    assert names[:3] == ["part-1", "winmail.dat", "ใบเสร็จ.pdf"] and names[-1] == RAW_NAME
    assert message.attachments[0].data == png
    assert message.metadata["inline_images"] == {"logo@x": "part-1"}
    assert message.attachments[-1].data == raw


def test_forwarded_mail_is_kept_whole_and_html_only_mail_gets_a_text() -> None:
    inner = "From: boss@example.com\r\nSubject: Budget\r\n\r\nThe numbers\r\n"
    raw = mail("From: a@example.com\nContent-Type: multipart/mixed; boundary=b",
               "--b\r\nContent-Type: text/html\r\n\r\n<div>See <i>below</i></div><div>Thanks</div>\r\n"
               "--b\r\nContent-Type: message/rfc822\r\n\r\n" + inner + "--b--\r\n")
    message = parse(raw)
    assert message.text.split() == ["See", "below", "Thanks"]
    forwarded = [a for a in message.attachments if a.file_name == "Budget.eml"]
    assert forwarded and b"The numbers" in forwarded[0].data


def test_oversized_parts_are_dropped_with_a_note() -> None:
    big = base64.b64encode(b"z" * 5000).decode()
    raw = mail("From: a@example.com\nContent-Type: multipart/mixed; boundary=b",
               "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
               "--b\r\nContent-Type: video/mp4; name=clip.mp4\r\nContent-Transfer-Encoding: base64\r\n\r\n"
               + big + "\r\n--b--\r\n")
    message = parse(raw, max_part_bytes=1000)
    assert message.text.startswith("see attached")
    assert "clip.mp4" in message.text and "not kept" in message.text
    assert message.metadata["dropped_parts"][0]["file_name"] == "clip.mp4"
    assert [a.file_name for a in message.attachments] == [RAW_NAME]


def test_the_new_part_of_a_reply_is_the_text() -> None:
    body = ("ได้รับของแล้วครับ ขอบคุณครับ\r\n\r\nOn Mon, 3 Nov 2026 at 10:00, Support <help@shop.example> wrote:\r\n"
            "> Your parcel is on its way.\r\n> Tracking: TH123\r\n")
    message = parse(mail("From: a@example.com\nContent-Type: text/plain; charset=utf-8", body))
    assert message.text == "ได้รับของแล้วครับ ขอบคุณครับ"
    assert "Tracking" in message.metadata["full_text"]
    german = "Danke, passt so.\r\n\r\nAm 03.11.2026 um 10:00 schrieb Support <help@shop.example>:\r\n> Alt\r\n"
    assert parse(mail("From: a@example.com\nContent-Type: text/plain; charset=utf-8", german)).text == "Danke, passt so."
    html = ('<div dir="ltr">Yes please</div><div class="gmail_quote"><div>On Mon, Support wrote:</div>'
            "<blockquote>old question</blockquote></div>")
    assert parse(mail("From: a@example.com\nContent-Type: text/html", html)).text == "Yes please"


@pytest.mark.parametrize(("header", "kind"), [
    ("Auto-Submitted: auto-replied", "auto_reply"),
    ("X-Autoreply: yes", "auto_reply"),
    ("X-Auto-Response-Suppress: All", "auto_reply"),
    ("Precedence: bulk", "bulk"),
    ("Precedence: junk", "bulk"),
    ("Precedence: list", "bulk"),
])
def test_machine_mail_is_automatic(header: str, kind: str) -> None:
    message = parse(mail(f"From: a@example.com\n{header}"))
    assert message.automatic and message.metadata["automatic"] == kind
    assert not parse(mail("From: a@example.com\nAuto-Submitted: no")).automatic


def test_a_delivery_report_is_a_bounce_threaded_to_the_original() -> None:
    ours = own_message_id(thread_key_for("root@customer.example"), 42, "shop.example")
    raw = mail(
        "From: MAILER-DAEMON@mx.example\nContent-Type: multipart/report; report-type=delivery-status; boundary=b",
        "--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
        "Final-Recipient: rfc822; x@y.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        f"--b\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <{ours}>\r\nSubject: Re: order\r\n\r\nbody\r\n--b--\r\n")
    message = parse(raw)
    assert message.automatic and message.metadata["automatic"] == "bounce"
    assert ours in message.in_reply_to
    assert message.thread_key == thread_key_for("root@customer.example")


def test_threading_keys() -> None:
    first = parse(mail("From: a@example.com\nMessage-ID: <Root@Customer.Example>"))
    assert first.source_id == "Root@customer.example"
    assert first.thread_key == thread_key_for("Root@customer.example")
    follow = parse(mail("From: b@example.com\nMessage-ID: <2@c.example>\nIn-Reply-To: <Root@customer.example>\n"
                        "References: <Root@CUSTOMER.example>"))
    assert follow.thread_key == first.thread_key
    assert follow.in_reply_to == ["Root@customer.example"]
    token = thread_key_for("whatever")
    ours = own_message_id(token, 7, "shop.example")
    answer = parse(mail(f"From: a@example.com\nMessage-ID: <3@c.example>\nIn-Reply-To: <{ours}>"))
    assert answer.thread_key == token
    by_address = parse(mail(f"From: a@example.com\nTo: {reply_address('help@shop.example', token)}"))
    assert by_address.thread_key == token
    no_id = mail("From: a@example.com\nSubject: no id")
    assert parse(no_id).source_id.startswith("sha256:") and parse(no_id).source_id == parse(no_id).source_id


def test_our_own_mail_is_recognised() -> None:
    ours = own_message_id("0" * 20, 9, "shop.example")
    parsed = parse_mail(mail(f"From: help@shop.example\nMessage-ID: <{ours}>\nX-Postroom-Message: 9"), inbox_id=1,
                        own_domains=frozenset({"shop.example"}))
    assert parsed.own
    assert not parse_mail(mail("From: a@example.com\nMessage-ID: <1@example.com>"), inbox_id=1).own


def test_unreadable_mail_raises_for_quarantine() -> None:
    with pytest.raises(MailParseError):
        parse_mail(b"   \r\n", inbox_id=1)
    with pytest.raises(MailParseError):
        parse_mail(b"X-Nothing: here\r\n\r\n", inbox_id=1)


def test_walmart_relay_mail_gets_its_order_and_walmart_notices_are_automatic() -> None:
    from connectors.email.relay import RELAYS, apply_relay, relay_for

    relay = relay_for("walmart", {})
    buyer = apply_relay(relay, parse(mail("From: Ana <c7f2a91@relay.walmart.com>\nSubject: Question about order "
                                          "number 1234567890123\nMessage-ID: <w1@relay.walmart.com>",
                                          "Where is my package?")))
    assert buyer.conversation_attributes == {"marketplace": "walmart", "order_id": "1234567890123"}
    assert not buyer.automatic
    notice = apply_relay(relay, parse(mail("From: Walmart <no-reply@walmart.com>\nSubject: Item published")))
    assert notice.automatic and notice.metadata["automatic"] == "marketplace_notice"
    custom = relay_for("walmart", {"relay_domains": "relay.example-mart.com"})
    assert custom.relay_domains == ("relay.example-mart.com",) and RELAYS["walmart"].relay_domains != custom.relay_domains


def test_a_reply_with_files_is_mixed_with_text_and_html_alternatives() -> None:
    from email import message_from_bytes, policy

    from connectors.base import InboundAttachment, OutboundMessage
    from connectors.email.smtp import build_reply

    reply = OutboundMessage(
        inbox_id=1, message_id=77, conversation_thread_key=thread_key_for("r@c.example"),
        recipient_source_id="sara@customer.example", text="سلام سارا\nفاکتور پیوست است.",
        attachments=[InboundAttachment(file_name="فاکتور.pdf", content_type="application/pdf", data=b"%PDF-1.4 x")],
        in_reply_to=["q2@c.example"], metadata={"thread_source_ids": ["r@c.example", "q2@c.example"],
                                                "subject": "سفارش ۷۷"})
    mail_obj, message_id = build_reply(reply, from_address="help@shop.example", domain="shop.example")
    parsed = message_from_bytes(bytes(mail_obj), policy=policy.default)
    assert parsed.get_content_type() == "multipart/mixed"
    assert [p.get_content_type() for p in parsed.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html", "application/pdf"]
    attachment = next(parsed.iter_attachments())
    assert attachment.get_filename() == "فاکتور.pdf" and attachment.get_content() == b"%PDF-1.4 x"
    assert parsed.get_body(("plain",)).get_content().strip() == "سلام سارا\nفاکتور پیوست است."
    assert 'dir="auto"' in parsed.get_body(("html",)).get_content()
    assert str(parsed["Subject"]) == "Re: سفارش ۷۷"
    assert str(parsed["References"]) == "<r@c.example> <q2@c.example>" and str(parsed["In-Reply-To"]) == "<q2@c.example>"
    assert str(parsed["Message-ID"]) == f"<{message_id}>" and message_id.endswith("@shop.example")
