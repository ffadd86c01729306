"""Every error answers JSON: ``{"message": …, "errors": [{"field": …, "message": …}]}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import PostroomError


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers."""

    @app.exception_handler(PostroomError)
    async def _domain(_: Request, exc: PostroomError) -> JSONResponse:
        return JSONResponse(
            {"message": exc.message, "description": exc.message, "errors": exc.errors},
            status_code=exc.status_code,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for error in exc.errors():
            location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
            errors.append({"field": ".".join(location) or None, "message": error.get("msg", "invalid")})
        message = "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors)
        return JSONResponse(
            {"message": message or "validation failed", "errors": errors}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "error"
        return JSONResponse({"message": message, "errors": []}, status_code=exc.status_code, headers=exc.headers)
