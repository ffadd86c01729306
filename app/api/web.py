"""Small helpers the agents' inbox page needs beyond the Chatwoot-compatible API, and
the static files of the page and the widget (``/web/…``)."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles
from sqlalchemy import func, select
from starlette.responses import Response
from starlette.types import Scope

from app.api.deps import PrincipalDep, SessionDep
from app.models import Event

router = APIRouter(prefix="/api/v1/accounts/{account_id}", tags=["realtime"])


@router.get("/stream/position", summary="The account's newest event seq (open the stream with `since=` it)")
async def stream_position(account_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    """Read this, then load lists over REST, then connect with ``?since=<seq>``: every
    change after the read is replayed, so nothing falls between the lists and the stream."""
    seq = await session.scalar(select(func.max(Event.seq)).where(Event.account_id == principal.account_id))
    return {"seq": int(seq or 0)}


class WebFiles(StaticFiles):
    """``app/web`` as static files: revalidated on every load (``no-cache`` with ETags, so a
    new release is picked up at once without a build step), never framed by other sites
    (the chat frame itself is served by ``/widget/frame``), never MIME-sniffed."""

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
