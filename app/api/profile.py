"""The caller's profile and password sign-in."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from app.api.deps import SessionDep, current_user, request_token
from app.api.schemas import SignIn
from app.auth import service as auth_service
from app.models import Account, User
from app.tickets.presenters import agent_json

router = APIRouter(tags=["profile"])


async def _profile(session: Any, user: User, token: str | None = None) -> dict[str, Any]:
    account = await session.get(Account, user.account_id)
    body = agent_json(user)
    body.update(
        {
            "provider": "email",
            "uid": user.email,
            "accounts": [
                {"id": account.id, "name": account.name, "role": user.role, "active_at": None}
            ],
        }
    )
    if token:
        body["access_token"] = token
    return body


@router.get("/api/v1/profile", summary="The caller's profile and accounts")
async def profile(session: SessionDep, user: User = Depends(current_user)) -> dict[str, Any]:
    return await _profile(session, user)


@router.post("/auth/sign_in", summary="Sign in with e-mail and password; returns a session token")
async def sign_in(body: SignIn, session: SessionDep) -> dict[str, Any]:
    user, token = await auth_service.sign_in(session, body.email, body.password)
    return {"data": await _profile(session, user, token)}


@router.delete("/auth/sign_out", summary="Revoke the session token used for this request")
async def sign_out(request: Request, session: SessionDep, user: User = Depends(current_user)) -> dict[str, Any]:
    token = request_token(request)
    if token:
        await auth_service.sign_out(session, token)
    return {"success": True}
