"""Reports (Chatwoot's ``/api/v2/accounts/{id}/reports`` family), with CSV for each.

Every report answers JSON, or CSV when the request says ``Accept: text/csv``. Reports
are for administrators, as in Chatwoot. ``since``/``until`` are Unix seconds (Chatwoot)
or ISO 8601; buckets are cut in ``timezone`` (an IANA name) or Chatwoot's
``timezone_offset`` (hours).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field
from sqlalchemy import select

from app.api.deps import AdminDep, SessionDep
from app.api.schemas import Body
from app.errors import Invalid, NotFound
from app.models import Inbox, Label, VolumePeak, utcnow
from app.reports import alerts, queries
from app.sla import reports as sla_reports

router = APIRouter(prefix="/api/v2/accounts/{account_id}/reports", tags=["reports"])
#: The longest range one report may cover.
MAX_RANGE = timedelta(days=732)


def parse_time(value: str | None, default: datetime, field: str) -> datetime:
    """Unix seconds or ISO 8601 (naive means UTC)."""
    if value in (None, ""):
        return default
    try:
        if value.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(value), UTC)
        parsed = datetime.fromisoformat(value)
    except (ValueError, OverflowError) as exc:
        raise Invalid("Unix seconds or an ISO 8601 time", field=field) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def time_range(since: str | None, until: str | None) -> tuple[datetime, datetime]:
    """The report's range; the last 30 days by default."""
    end = parse_time(until, utcnow(), "until")
    start = parse_time(since, end - timedelta(days=30), "since")
    if start >= end:
        raise Invalid("since must be before until", field="since")
    if end - start > MAX_RANGE:
        raise Invalid("a report covers at most two years", field="since")
    return start, end


def zone_name(timezone: str | None, timezone_offset: str | None) -> str:
    """An IANA zone from ``timezone``, or Chatwoot's whole-hour ``timezone_offset``."""
    if timezone:
        return timezone
    if timezone_offset not in (None, ""):
        try:
            hours = float(timezone_offset)  # type: ignore[arg-type]
        except ValueError as exc:
            raise Invalid("hours east of UTC", field="timezone_offset") from exc
        if hours != int(hours) or not -12 <= hours <= 14:
            raise Invalid("whole hours between -12 and 14; use timezone for others", field="timezone_offset")
        return "UTC" if hours == 0 else f"Etc/GMT{-int(hours):+d}"
    return "UTC"


async def make_scope(session: SessionDep, account_id: int, type: str, id: str | None, business_hours: str | None,
                     timezone: str | None, timezone_offset: str | None) -> queries.Scope:
    """The scope of a report; a label is named by its title or its id."""
    scope_id: int | str | None = id
    if type == "label" and id not in (None, ""):
        if id.isdigit():
            label = await session.scalar(select(Label).where(Label.account_id == account_id, Label.id == int(id)))
            if label is None:
                raise NotFound("Label")
            scope_id = label.title
    elif id not in (None, ""):
        if not id.isdigit():
            raise Invalid("a numeric id", field="id")
        scope_id = int(id)
    return queries.Scope(account_id, type, scope_id, str(business_hours).lower() in ("true", "1"),
                         zone_name(timezone, timezone_offset))


def respond(request: Request, rows: list[dict[str, Any]], body: Any) -> Any:
    """``body`` as JSON, or ``rows`` as CSV when asked for ``text/csv``."""
    if "text/csv" not in request.headers.get("accept", ""):
        return body
    out = io.StringIO()
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    writer = csv.DictWriter(out, fieldnames=columns or ["value"])
    writer.writeheader()
    writer.writerows(rows)
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": 'attachment; filename="report.csv"'})


@router.get("", summary="One metric over time, by day, week or month (Chatwoot)")
async def report(account_id: int, request: Request, principal: AdminDep, session: SessionDep,
                 metric: str = "conversations_count", type: str = "account", id: str | None = None,
                 since: str | None = None, until: str | None = None, group_by: str = "day",
                 business_hours: str | None = None, timezone: str | None = None,
                 timezone_offset: str | None = None) -> Any:
    scope = await make_scope(session, account_id, type, id, business_hours, timezone, timezone_offset)
    start, end = time_range(since, until)
    rows = await queries.timeseries(session, scope, metric, start, end, group_by)
    csv_rows = [{"timestamp": datetime.fromtimestamp(r["timestamp"], UTC).isoformat(), "value": r["value"],
                 "count": r["count"]} for r in rows]
    return respond(request, csv_rows, rows)


@router.get("/summary", summary="Totals and averages over a range, with the previous range (Chatwoot)")
async def summary(account_id: int, request: Request, principal: AdminDep, session: SessionDep,
                  type: str = "account", id: str | None = None, since: str | None = None,
                  until: str | None = None, business_hours: str | None = None,
                  timezone: str | None = None, timezone_offset: str | None = None) -> Any:
    scope = await make_scope(session, account_id, type, id, business_hours, timezone, timezone_offset)
    start, end = time_range(since, until)
    body = await queries.summary(session, scope, start, end)
    rows = [{"metric": k, "value": v, "previous": body["previous"][k]} for k, v in body.items() if k != "previous"]
    return respond(request, rows, body)


@router.get("/distribution", summary="Count, average and percentiles (p50…p99) of a time metric")
async def distribution(account_id: int, request: Request, principal: AdminDep, session: SessionDep,
                       metric: str = "avg_first_response_time", type: str = "account", id: str | None = None,
                       since: str | None = None, until: str | None = None, business_hours: str | None = None) -> Any:
    scope = await make_scope(session, account_id, type, id, business_hours, None, None)
    start, end = time_range(since, until)
    body = await queries.distribution(session, scope, metric, start, end)
    return respond(request, [body], body)


@router.get("/heatmap", summary="A metric by local weekday and hour of day")
async def heatmap(account_id: int, request: Request, principal: AdminDep, session: SessionDep,
                  metric: str = "conversations_count", type: str = "account", id: str | None = None,
                  since: str | None = None, until: str | None = None, business_hours: str | None = None,
                  timezone: str | None = None, timezone_offset: str | None = None) -> Any:
    scope = await make_scope(session, account_id, type, id, business_hours, timezone, timezone_offset)
    start, end = time_range(since, until)
    body = await queries.heatmap(session, scope, metric, start, end)
    rows = [{"weekday": day, **{f"h{h:02d}": body["matrix"][i][h] for h in range(24)}}
            for i, day in enumerate(body["weekdays"])]
    return respond(request, rows, body)


@router.get("/channels", summary="A metric per channel type")
async def channels(account_id: int, request: Request, principal: AdminDep, session: SessionDep,
                   metric: str = "incoming_messages_count", type: str = "account", id: str | None = None,
                   since: str | None = None, until: str | None = None, business_hours: str | None = None) -> Any:
    scope = await make_scope(session, account_id, type, id, business_hours, None, None)
    start, end = time_range(since, until)
    rows = await queries.by_channel(session, scope, metric, start, end)
    return respond(request, rows, {"metric": metric, "payload": rows})


@router.get("/csat", summary="Satisfaction: surveys sent and answered, distribution, average")
async def csat(account_id: int, request: Request, principal: AdminDep, session: SessionDep,
               type: str = "account", id: str | None = None, since: str | None = None,
               until: str | None = None) -> Any:
    scope = await make_scope(session, account_id, type, id, None, None, None)
    start, end = time_range(since, until)
    body = await queries.csat(session, scope, start, end)
    rows = [{"rating": r, "count": n} for r, n in body["distribution"].items()]
    return respond(request, rows, body)


@router.get("/response_rates", summary="Response rate within each SLA and marketplace rule")
async def response_rates(account_id: int, request: Request, principal: AdminDep, session: SessionDep,
                         since: str | None = None, until: str | None = None, group_by: str = "inbox") -> Any:
    if group_by not in ("inbox", "agent", "channel_type"):
        raise Invalid("group_by must be inbox, agent or channel_type", field="group_by")
    start, end = time_range(since, until)
    rows = await sla_reports.metrics(session, account_id, since=start, until=end, group_by=group_by, inbox_ids=None)
    marketplaces = []
    for inbox in (await session.scalars(select(Inbox).where(Inbox.account_id == account_id).order_by(Inbox.id))).all():
        scores = await sla_reports.marketplace_scores(session, inbox)
        if scores.get("scores"):
            marketplaces.append({**scores, "inbox_name": inbox.name})
    csv_rows = [{"inbox_id": m["inbox_id"], "inbox_name": m["inbox_name"], "channel_type": m["channel_type"],
                 "metric": m["metric"], **{k: v for k, v in s.items()}} for m in marketplaces for s in m["scores"]]
    return respond(request, rows + csv_rows, {"rules": rows, "marketplaces": marketplaces})


class PeakBody(Body):
    starts_at: str = Field(examples=["2026-11-27T00:00:00+07:00"])
    ends_at: str = Field(examples=["2026-11-30T23:59:59+07:00"])
    label: str | None = Field(default=None, examples=["shipping"])
    channel_type: str | None = Field(default=None, examples=["shopee"])
    note: str | None = Field(default=None, examples=["Black Friday"])


def peak_json(peak: VolumePeak) -> dict[str, Any]:
    return {"id": peak.id, "starts_at": int(peak.starts_at.timestamp()), "ends_at": int(peak.ends_at.timestamp()),
            "label": peak.label, "channel_type": peak.channel_type, "note": peak.note}


@router.get("/peaks", summary="Known busy periods that do not raise volume alerts")
async def list_peaks(account_id: int, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    rows = await session.scalars(select(VolumePeak).where(VolumePeak.account_id == account_id).order_by(VolumePeak.starts_at))
    return {"payload": [peak_json(p) for p in rows]}


@router.post("/peaks", summary="Mark a known busy period")
async def create_peak(account_id: int, body: PeakBody, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    starts = parse_time(body.starts_at, utcnow(), "starts_at")
    ends = parse_time(body.ends_at, utcnow(), "ends_at")
    if ends <= starts:
        raise Invalid("ends_at must be after starts_at", field="ends_at")
    peak = VolumePeak(account_id=account_id, starts_at=starts, ends_at=ends, label=body.label,
                      channel_type=body.channel_type, note=body.note)
    session.add(peak)
    await session.flush()
    return peak_json(peak)


@router.delete("/peaks/{peak_id}", summary="Remove a known busy period")
async def delete_peak(account_id: int, peak_id: int, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    peak = await session.scalar(select(VolumePeak).where(VolumePeak.account_id == account_id, VolumePeak.id == peak_id))
    if peak is None:
        raise NotFound("Peak")
    await session.delete(peak)
    return {"id": peak_id}


@router.get("/volume_alerts", summary="Volume spikes raised so far, newest first")
async def volume_alerts(account_id: int, request: Request, principal: AdminDep, session: SessionDep) -> Any:
    rows = await alerts.recent(session, account_id)
    return respond(request, rows, {"payload": rows})


@router.post("/volume_alerts/check", summary="Compare the last hours with the same hours of past weeks now")
async def check_volume(account_id: int, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    raised = await alerts.check_account(session, account_id, utcnow())
    return {"payload": raised}
