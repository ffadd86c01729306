"""Satisfaction surveys (the public page, no login; the agents' view) and customer insight.

The public page is reached only by the survey's random id and shows nothing of the
conversation: no names, no messages, no inbox. It takes one answer, by form post (the
page works without JavaScript) or by JSON (the chat widget's rating buttons); a second
answer gets 409.
"""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from app.api.deps import PrincipalDep, SessionDep
from app.errors import Conflict, Invalid
from app.models import Conversation, CsatResponse
from app.reports import csat, insight
from app.tickets import conversations as conversation_service

router = APIRouter(tags=["satisfaction surveys"])

PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
#: The page's words, by language (the browser's Accept-Language picks one).
TEXT = {
    "en": {"question": "How would you rate your conversation with us?", "comment": "Anything you would like to add?",
           "send": "Send", "thanks": "Thank you for your feedback.", "done": "This survey has already been answered.",
           "labels": ["Very bad", "Bad", "Okay", "Good", "Very good"]},
    "th": {"question": "คุณให้คะแนนการสนทนากับเราเท่าไร", "comment": "มีอะไรอยากบอกเราเพิ่มเติมไหม",
           "send": "ส่ง", "thanks": "ขอบคุณสำหรับความคิดเห็นของคุณ", "done": "แบบสำรวจนี้ได้รับคำตอบแล้ว",
           "labels": ["แย่มาก", "แย่", "พอใช้", "ดี", "ดีมาก"]},
    "vi": {"question": "Bạn đánh giá cuộc trò chuyện với chúng tôi thế nào?", "comment": "Bạn muốn góp ý thêm điều gì?",
           "send": "Gửi", "thanks": "Cảm ơn bạn đã góp ý.", "done": "Khảo sát này đã được trả lời.",
           "labels": ["Rất tệ", "Tệ", "Tạm được", "Tốt", "Rất tốt"]},
    "fa": {"question": "گفتگوی خود با ما را چگونه ارزیابی می‌کنید؟", "comment": "نکتهٔ دیگری دارید؟",
           "send": "ارسال", "thanks": "از بازخورد شما سپاسگزاریم.", "done": "به این نظرسنجی قبلاً پاسخ داده شده است.",
           "labels": ["خیلی بد", "بد", "متوسط", "خوب", "خیلی خوب"]},
    "zh": {"question": "您如何评价与我们的这次对话？", "comment": "还有什么想告诉我们的吗？",
           "send": "提交", "thanks": "感谢您的反馈。", "done": "此调查已经回答过了。",
           "labels": ["很差", "差", "一般", "好", "很好"]},
}


def language(request: Request) -> str:
    """The first supported language of the browser's Accept-Language."""
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in TEXT:
            return code
    return "en"


def page(lang: str, body: str, status: int = 200) -> HTMLResponse:
    """A self-contained page (no scripts, no outside resources)."""
    direction = "rtl" if lang == "fa" else "ltr"
    document = (
        f'<!doctype html><html lang="{lang}" dir="{direction}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="robots" content="noindex">'
        '<title>★</title><style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}'
        'fieldset{border:0;padding:0;display:flex;gap:.5rem;flex-wrap:wrap}label.r{border:1px solid #bbb;'
        'border-radius:.5rem;padding:.5rem .75rem;cursor:pointer}textarea{width:100%;min-height:5rem}'
        'button{margin-top:1rem;padding:.5rem 1.5rem}</style></head>'
        f'<body>{body}</body></html>')
    return HTMLResponse(document, status_code=status, headers={
        "Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
        "X-Robots-Tag": "noindex"})


@router.get("/survey/responses/{uuid}", response_class=HTMLResponse, summary="The public survey page (no login)")
async def survey_page(uuid: str, request: Request, session: SessionDep) -> HTMLResponse:
    words = TEXT[language(request)]
    survey = await csat.survey_by_uuid(session, uuid)
    if survey.rating is not None:
        return page(language(request), f"<p>{html.escape(words['done'])}</p>")
    options = "".join(
        f'<label class="r"><input type="radio" name="rating" value="{n}" required> {n} · '
        f'{html.escape(words["labels"][n - 1])}</label>' for n in range(1, 6))
    return page(language(request), (
        f'<form method="post"><h1>{html.escape(words["question"])}</h1><fieldset>{options}</fieldset>'
        f'<p><label>{html.escape(words["comment"])}<br><textarea name="feedback_message" maxlength="{csat.MAX_FEEDBACK}">'
        f'</textarea></label></p><button type="submit">{html.escape(words["send"])}</button></form>'))


async def _answer_fields(request: Request) -> tuple[Any, str | None, bool]:
    """(rating, feedback, answered by form?) from a JSON or form-encoded body."""
    raw = await request.body()
    if "application/json" in request.headers.get("content-type", ""):
        try:
            data = json.loads(raw or b"{}")
        except ValueError as exc:
            raise Invalid("the body is not JSON") from exc
        if not isinstance(data, dict):
            raise Invalid("the body must be a JSON object")
        feedback = data.get("feedback_message")
        return data.get("rating"), feedback if isinstance(feedback, str) else None, False
    form = parse_qs(raw.decode("utf-8", "replace"))
    rating = form.get("rating", [""])[0]
    return (int(rating) if rating.isdigit() else rating), form.get("feedback_message", [None])[0], True


@router.post("/survey/responses/{uuid}", summary="Answer a survey once (form post or JSON)")
async def answer_survey(uuid: str, request: Request, session: SessionDep) -> Any:
    rating, feedback, by_form = await _answer_fields(request)
    words = TEXT[language(request)]
    try:
        survey = await csat.answer(session, uuid, rating, feedback)
    except Conflict:
        if by_form:
            return page(language(request), f"<p>{html.escape(words['done'])}</p>", status=409)
        raise
    if by_form:
        return page(language(request), f"<p>{html.escape(words['thanks'])}</p>")
    return {"rating": survey.rating, "feedback_message": survey.feedback}


async def _with_display_ids(session: SessionDep, surveys: list[CsatResponse]) -> list[dict[str, Any]]:
    ids = {s.conversation_id for s in surveys}
    display = dict((await session.execute(select(Conversation.id, Conversation.display_id).where(
        Conversation.id.in_(ids)))).all()) if ids else {}
    return [{**csat.survey_json(s), "conversation_id": display.get(s.conversation_id)} for s in surveys]


@router.get("/api/v1/accounts/{account_id}/conversations/{conversation_id}/csat",
            summary="The conversation's satisfaction survey and its answer")
async def conversation_csat(account_id: int, conversation_id: int, principal: PrincipalDep,
                            session: SessionDep) -> dict[str, Any]:
    conversation = await conversation_service.get_conversation(session, principal, conversation_id)
    survey = await session.scalar(select(CsatResponse).where(CsatResponse.conversation_id == conversation.id))
    if survey is None:
        return {"payload": None}
    (body,) = await _with_display_ids(session, [survey])
    return {"payload": body}


@router.get("/api/v1/accounts/{account_id}/csat_survey_responses", summary="Survey answers, newest first (Chatwoot)")
async def list_responses(account_id: int, principal: PrincipalDep, session: SessionDep, page: int = 1,
                         rating: int | None = None) -> list[dict[str, Any]]:
    query = (select(CsatResponse).where(CsatResponse.account_id == account_id, CsatResponse.rating.is_not(None),
                                        principal.inbox_filter(CsatResponse.inbox_id))
             .order_by(CsatResponse.answered_at.desc(), CsatResponse.id.desc())
             .limit(25).offset(25 * (max(page, 1) - 1)))
    if rating is not None:
        query = query.where(CsatResponse.rating == rating)
    return await _with_display_ids(session, list((await session.scalars(query)).all()))


@router.get("/api/v1/accounts/{account_id}/contact_insights/filter",
            summary="Contacts by what they did: e.g. wrote 3+ times this month and last CSAT <= 2")
async def contacts_by_activity(account_id: int, principal: PrincipalDep, session: SessionDep,
                               since: str | None = None, until: str | None = None,
                               min_messages: int | None = None, min_conversations: int | None = None,
                               last_csat_lte: int | None = None, last_csat_gte: int | None = None,
                               channel_type: str | None = None, label: str | None = None) -> dict[str, Any]:
    from app.api.reports import time_range

    start, end = time_range(since, until)
    rows = await insight.filter_contacts(
        session, account_id, since=start, until=end, min_messages=min_messages, min_conversations=min_conversations,
        last_csat_lte=last_csat_lte, last_csat_gte=last_csat_gte, channel_type=channel_type, label=label,
        inbox_filter=principal.inbox_filter(Conversation.inbox_id))
    return {"meta": {"count": len(rows)}, "payload": rows}


@router.get("/api/v1/accounts/{account_id}/contacts/{contact_id}/insight",
            summary="First and last contact, channels, response times, CSAT, labels and orders of a contact")
async def contact_insight(account_id: int, contact_id: int, principal: PrincipalDep,
                          session: SessionDep) -> dict[str, Any]:
    from app.tickets.contacts import get_contact

    await get_contact(session, account_id, contact_id)
    return {"payload": await insight.contact_insight(session, account_id, contact_id,
                                                      principal.inbox_filter(Conversation.inbox_id))}
