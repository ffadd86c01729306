"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, RedirectResponse
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


@router.get("/", include_in_schema=False)
async def home() -> RedirectResponse:
    """Until the agents' inbox page is served here, the front door is the API reference."""
    return RedirectResponse("/docs")
