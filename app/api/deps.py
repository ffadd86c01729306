"""Request dependencies: the unit of work and the authenticated caller.

The session dependency has ``scope="function"``: its commit runs after the route
returns and *before* the response is sent, so a client never sees 200 for a write that
then fails to commit (FastAPI >= 0.118 runs request-scoped teardown after sending).
GET and HEAD requests get a read-only session; everything else a write session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service as auth_service
from app.auth.principal import Principal
from app.errors import NotFound, Unauthorized
from app.models.accounts import BOT_ROLE
from app.runtime import Runtime
from app.tickets.conversations import member_inbox_ids


async def get_runtime(request: Request) -> Runtime:
    """The process's runtime (set up by the app factory).

    ``async`` although it awaits nothing: FastAPI runs a plain ``def`` dependency in its
    thread pool, a thread hop on every request that uses it.
    """
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    runtime: Runtime = request.app.state.runtime
    if request.method in ("GET", "HEAD"):
        async with runtime.db.read_session() as session:
            yield session
    else:
        async with runtime.db.write_session() as session:
            yield session


SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]


def request_token(request: Request) -> str | None:
    """The access token: ``api_access_token`` header (Chatwoot) or a Bearer token."""
    token = request.headers.get("api_access_token")
    if token:
        return token.strip()
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


async def current_user(request: Request, session: SessionDep):  # type: ignore[no-untyped-def]
    """The user behind the request's token; 401 without a valid one."""
    token = request_token(request)
    if not token:
        raise Unauthorized("You need to sign in or sign up before continuing.")
    user = await auth_service.user_for_token(session, token)
    if user is None:
        raise Unauthorized("Invalid access token")
    request.state.account_id = user.account_id
    return user


#: What an agent bot's token may do (Chatwoot's bot-accessible endpoints, plus reading
#: the conversation it works on).
BOT_ROUTES = frozenset({
    ("GET", "/api/v1/accounts/{account_id}/conversations/{conversation_id}"),
    ("PATCH", "/api/v1/accounts/{account_id}/conversations/{conversation_id}"),
    ("POST", "/api/v1/accounts/{account_id}/conversations/{conversation_id}/toggle_status"),
    ("POST", "/api/v1/accounts/{account_id}/conversations/{conversation_id}/toggle_priority"),
    ("POST", "/api/v1/accounts/{account_id}/conversations/{conversation_id}/custom_attributes"),
    ("POST", "/api/v1/accounts/{account_id}/conversations/{conversation_id}/assignments"),
    ("GET", "/api/v1/accounts/{account_id}/conversations/{conversation_id}/messages"),
    ("POST", "/api/v1/accounts/{account_id}/conversations/{conversation_id}/messages"),
    ("POST", "/api/v1/accounts/{account_id}/conversations"),
})


async def account_principal(request: Request, account_id: int, session: SessionDep) -> Principal:
    """The caller, bound to the account in the path; 404 for any other account."""
    user = await current_user(request, session)
    if user.account_id != account_id:
        raise NotFound("Account")
    if user.role == BOT_ROLE:
        route = request.scope.get("route")
        if (request.method, getattr(route, "path", "")) not in BOT_ROUTES:
            from app.errors import Forbidden

            raise Forbidden("agent bots may only work on conversations")
    inbox_ids = frozenset() if user.role == "administrator" else await member_inbox_ids(session, user)
    return Principal(user=user, account_id=account_id, inbox_ids=inbox_ids)


PrincipalDep = Annotated[Principal, Depends(account_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    """Only administrators may manage the account's setup (async: see :func:`get_runtime`)."""
    from app.errors import Forbidden

    if not principal.is_admin:
        raise Forbidden("You are not authorized to do this action")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]
