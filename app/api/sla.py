"""SLA policies, business calendars, the late-response risk view and SLA metrics."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field
from sqlalchemy import select

from app.api.deps import AdminDep, PrincipalDep, SessionDep
from app.api.schemas import Body
from app.errors import Invalid, NotFound
from app.models import BusinessCalendarRow, Inbox, SlaPolicy, utcnow
from app.sla import reports
from app.sla import service as sla_service
from app.sla.engine import mark_no_reply_needed
from app.tickets import conversations as conversation_service

router = APIRouter(prefix="/api/v1/accounts/{account_id}", tags=["sla"])


class PolicyBody(Body):
    name: str | None = Field(default=None, examples=["Standard support"])
    description: str | None = None
    first_response_time_threshold: float | None = Field(default=None, examples=[3600])
    next_response_time_threshold: float | None = Field(default=None, examples=[14400])
    resolution_time_threshold: float | None = Field(default=None, examples=[86400])
    only_during_business_hours: bool | None = None
    calendar_id: int | None = None
    pause_on_pending: bool | None = None
    pause_on_snoozed: bool | None = None
    bot_replies_count: bool | None = None
    rules: dict[str, list[Any]] | None = Field(default=None, examples=[{"channel_types": ["email"], "priorities": ["urgent"]}])
    position: int | None = None


class CalendarBody(Body):
    name: str | None = Field(default=None, examples=["Bangkok office"])
    timezone: str | None = Field(default=None, examples=["Asia/Bangkok"])
    weekly: dict[str, list[list[str]]] | None = Field(default=None, examples=[{"mon": [["09:00", "12:00"], ["13:00", "18:00"]]}])
    holidays: list[dict[str, Any]] | None = Field(default=None, examples=[[{"date": "2026-04-13", "yearly": True}]])
    is_default: bool | None = None


class NoReplyNeeded(Body):
    note: str | None = Field(default=None, examples=["Buyer only said thanks"])


def policy_json(policy: SlaPolicy) -> dict[str, Any]:
    return {k: getattr(policy, k) for k in ("id", "account_id", *sla_service.POLICY_FIELDS)}


def calendar_json(row: BusinessCalendarRow) -> dict[str, Any]:
    return {"id": row.id, "account_id": row.account_id, "name": row.name, "timezone": row.timezone,
            "weekly": row.weekly, "holidays": row.holidays, "is_default": row.is_default}


def _duration(value: str, field: str) -> timedelta:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", value.strip())
    if not match:
        raise Invalid("a duration such as 90m, 6h or 2d", field=field)
    number, unit = float(match.group(1)), match.group(2) or "s"
    return timedelta(seconds=number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


def _time(value: str | None, default: datetime, field: str) -> datetime:
    if value is None:
        return default
    try:
        if value.isdigit():
            return datetime.fromtimestamp(int(value), UTC)
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError as exc:
        raise Invalid("a Unix time or an ISO 8601 time", field=field) from exc


def _maybe_csv(request: Request, rows: list[dict[str, Any]], body: dict[str, Any]) -> Any:
    if "text/csv" not in request.headers.get("accept", ""):
        return body
    out = io.StringIO()
    columns = sorted({key for row in rows for key in row})
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8")


@router.get("/sla_policies", summary="List SLA policies")
async def list_policies(account_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    rows = await session.scalars(select(SlaPolicy).where(SlaPolicy.account_id == account_id).order_by(SlaPolicy.position, SlaPolicy.id))
    return {"payload": [policy_json(p) for p in rows]}


@router.post("/sla_policies", summary="Create an SLA policy (thresholds in seconds)")
async def create_policy(account_id: int, body: PolicyBody, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    return {"payload": policy_json(await sla_service.save_policy(session, account_id, None, body.model_dump(exclude_unset=True)))}


@router.get("/sla_policies/{sla_policy_id}", summary="Get an SLA policy")
async def get_policy(account_id: int, sla_policy_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    return {"payload": policy_json(await sla_service.get_policy(session, account_id, sla_policy_id))}


@router.patch("/sla_policies/{sla_policy_id}", summary="Change an SLA policy (running clocks keep their due times)")
async def update_policy(account_id: int, sla_policy_id: int, body: PolicyBody, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    policy = await sla_service.get_policy(session, account_id, sla_policy_id)
    return {"payload": policy_json(await sla_service.save_policy(session, account_id, policy, body.model_dump(exclude_unset=True)))}


@router.delete("/sla_policies/{sla_policy_id}", summary="Delete an SLA policy")
async def delete_policy(account_id: int, sla_policy_id: int, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    await session.delete(await sla_service.get_policy(session, account_id, sla_policy_id))
    return {}


@router.get("/business_calendars", summary="List business-hours calendars")
async def list_calendars(account_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    rows = await session.scalars(select(BusinessCalendarRow).where(BusinessCalendarRow.account_id == account_id).order_by(BusinessCalendarRow.id))
    return {"payload": [calendar_json(r) for r in rows]}


@router.post("/business_calendars", summary="Create a calendar: IANA zone, weekly hours (several a day), holidays")
async def create_calendar(account_id: int, body: CalendarBody, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    return {"payload": calendar_json(await sla_service.save_calendar(session, account_id, None, body.model_dump(exclude_unset=True)))}


@router.get("/business_calendars/{calendar_id}", summary="Get a calendar")
async def get_calendar(account_id: int, calendar_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    return {"payload": calendar_json(await sla_service.get_calendar(session, account_id, calendar_id))}


@router.patch("/business_calendars/{calendar_id}", summary="Change a calendar")
async def update_calendar(account_id: int, calendar_id: int, body: CalendarBody, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    row = await sla_service.get_calendar(session, account_id, calendar_id)
    return {"payload": calendar_json(await sla_service.save_calendar(session, account_id, row, body.model_dump(exclude_unset=True)))}


@router.delete("/business_calendars/{calendar_id}", summary="Delete a calendar")
async def delete_calendar(account_id: int, calendar_id: int, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    await session.delete(await sla_service.get_calendar(session, account_id, calendar_id))
    return {}


@router.get("/sla/at_risk", summary="Open clocks by time left, with risk bands (JSON or text/csv)")
async def at_risk(account_id: int, request: Request, principal: PrincipalDep, session: SessionDep,
                  within: str = "6h", inbox_id: int | None = None, channel_type: str | None = None) -> Any:
    rows = await reports.at_risk(session, account_id, within=_duration(within, "within"),
                                 inbox_ids=None if principal.is_admin else principal.inbox_ids,
                                 inbox_id=inbox_id, channel_type=channel_type)
    return _maybe_csv(request, rows, {"payload": rows, "meta": {"count": len(rows), "now": int(utcnow().timestamp())}})


@router.get("/sla/metrics", summary="Response rate within each rule, breaches, median/p90 times (JSON or text/csv)")
async def sla_metrics(account_id: int, request: Request, principal: PrincipalDep, session: SessionDep,
                      since: str | None = None, until: str | None = None, group_by: str = "inbox") -> Any:
    if group_by not in ("inbox", "agent", "channel_type"):
        raise Invalid("group_by must be inbox, agent or channel_type", field="group_by")
    now = utcnow()
    rows = await reports.metrics(session, account_id, since=_time(since, now - timedelta(days=30), "since"),
                                 until=_time(until, now, "until"), group_by=group_by,
                                 inbox_ids=None if principal.is_admin else principal.inbox_ids)
    return _maybe_csv(request, rows, {"payload": rows})


@router.get("/sla/marketplace_scores", summary="Each marketplace's responsiveness figure, computed the marketplace's way")
async def marketplace_scores(account_id: int, principal: PrincipalDep, session: SessionDep, inbox_id: int | None = None) -> dict[str, Any]:
    query = select(Inbox).where(Inbox.account_id == account_id, Inbox.channel_type.in_(tuple(reports.SCORES)))
    if inbox_id is not None:
        query = query.where(Inbox.id == inbox_id)
    inboxes = [i for i in await session.scalars(query.order_by(Inbox.id)) if principal.can_see_inbox(i.id)]
    if inbox_id is not None and not inboxes:
        raise NotFound("Inbox")
    return {"payload": [await reports.marketplace_scores(session, inbox) for inbox in inboxes]}


@router.post("/conversations/{conversation_id}/no_reply_needed",
             summary="Mark the buyer's messages as needing no reply: stops the reply clocks, recorded")
async def no_reply_needed(account_id: int, conversation_id: int, body: NoReplyNeeded, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    conversation = await conversation_service.get_conversation(session, principal, conversation_id, for_update=True)
    ended = await mark_no_reply_needed(session, conversation, utcnow(), body.note or f"no reply needed ({principal.user.name})")
    return {"stopped": [c.kind for c in ended]}
