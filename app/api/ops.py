"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import text

from app.api.deps import RuntimeDep
from app.migrate import current_revision, head_revision

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers and its schema is at the latest migration")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    try:
        async with runtime.db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            revision = await connection.run_sync(current_revision)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
    head = head_revision()
    if revision != head:
        return JSONResponse(
            {"status": "migrations pending", "revision": revision, "head": head}, status_code=503
        )
    return JSONResponse({"status": "ready", "database": runtime.db.dialect, "revision": revision})


#: The inbox page loads only its own scripts; e-mail HTML is shown in sandboxed srcdoc
#: frames, which inherit this policy (so no script runs there either). ``blob:`` images:
#: attachment previews, fetched with the agent's token (an ``<img src>`` cannot send it).
INBOX_CSP = ("default-src 'self'; script-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob: https:; "
             "style-src 'self' 'unsafe-inline'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
             "form-action 'self'; object-src 'none'")


@router.get("/", include_in_schema=False)
async def home() -> FileResponse:
    """The agents' inbox page (static ES modules under app/web; see docs/inbox.md)."""
    from app.api.widget import WEB_DIR

    return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers={
        "Cache-Control": "no-cache", "Content-Security-Policy": INBOX_CSP,
        "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
    })
