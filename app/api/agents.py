"""Agents of the account."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import AdminDep, PrincipalDep, SessionDep
from app.api.schemas import AgentCreate, AgentUpdate
from app.auth import service as auth_service
from app.errors import Invalid
from app.models.accounts import ROLES
from app.tickets.presenters import agent_json

router = APIRouter(prefix="/api/v1/accounts/{account_id}/agents", tags=["agents"])


@router.get("", summary="List agents")
async def list_agents(account_id: int, principal: PrincipalDep, session: SessionDep) -> list[dict[str, Any]]:
    return [agent_json(u) for u in await auth_service.list_agents(session, account_id)]


@router.get("/{agent_id}", summary="Get an agent")
async def get_agent(account_id: int, agent_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    return agent_json(await auth_service.get_agent(session, account_id, agent_id))


@router.post("", summary="Add an agent (administrators)")
async def add_agent(account_id: int, body: AgentCreate, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    if body.role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}", field="role")
    new = await auth_service.create_user(
        session, account_id, email=body.email, name=body.name, role=body.role, password=body.password
    )
    if body.availability_status:
        await auth_service.update_agent(session, new.user, availability=body.availability_status)
    return agent_json(new.user)


@router.patch("/{agent_id}", summary="Change an agent (administrators)")
async def update_agent(
    account_id: int, agent_id: int, body: AgentUpdate, principal: AdminDep, session: SessionDep
) -> dict[str, Any]:
    user = await auth_service.get_agent(session, account_id, agent_id)
    await auth_service.update_agent(
        session,
        user,
        name=body.name,
        role=body.role,
        availability=body.availability or body.availability_status,
        display_name=body.display_name,
    )
    return agent_json(user)


@router.delete("/{agent_id}", summary="Remove an agent (administrators)")
async def remove_agent(account_id: int, agent_id: int, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    user = await auth_service.get_agent(session, account_id, agent_id)
    if user.id == principal.user.id:
        raise Invalid("you cannot remove yourself", field="agent_id")
    await session.delete(user)
    return {}
