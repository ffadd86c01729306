"""Teams and team members."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import AdminDep, PrincipalDep, SessionDep
from app.api.schemas import TeamBody, UserIds
from app.tickets import teams as team_service
from app.tickets.presenters import agent_json, team_json

router = APIRouter(prefix="/api/v1/accounts/{account_id}/teams", tags=["teams"])


async def _member_ids(session: Any, team: Any) -> set[int]:
    return {u.id for u in await team_service.team_members(session, team)}


@router.get("", summary="List teams")
async def list_teams(account_id: int, principal: PrincipalDep, session: SessionDep) -> list[dict[str, Any]]:
    teams = await team_service.list_teams(session, account_id)
    return [team_json(t, is_member=principal.user.id in await _member_ids(session, t)) for t in teams]


@router.get("/{team_id}", summary="Get a team")
async def get_team(account_id: int, team_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    team = await team_service.get_team(session, account_id, team_id)
    return team_json(team, is_member=principal.user.id in await _member_ids(session, team))


@router.post("", summary="Create a team (administrators)")
async def create_team(account_id: int, body: TeamBody, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    team = await team_service.save_team(session, account_id, None, **body.model_dump())
    return team_json(team)


@router.patch("/{team_id}", summary="Change a team (administrators)")
async def update_team(account_id: int, team_id: int, body: TeamBody, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    team = await team_service.get_team(session, account_id, team_id)
    await team_service.save_team(session, account_id, team, **body.model_dump())
    return team_json(team)


@router.delete("/{team_id}", summary="Delete a team (administrators)")
async def delete_team(account_id: int, team_id: int, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    await session.delete(await team_service.get_team(session, account_id, team_id))
    return {}


@router.get("/{team_id}/team_members", summary="List a team's agents")
async def list_members(account_id: int, team_id: int, principal: PrincipalDep, session: SessionDep) -> list[dict[str, Any]]:
    team = await team_service.get_team(session, account_id, team_id)
    return [agent_json(u) for u in await team_service.team_members(session, team)]


@router.post("/{team_id}/team_members", summary="Add agents to a team (administrators)")
async def add_members(account_id: int, team_id: int, body: UserIds, principal: AdminDep, session: SessionDep) -> list[dict[str, Any]]:
    team = await team_service.get_team(session, account_id, team_id)
    await team_service.change_members(session, team, body.user_ids, add=True)
    return [agent_json(u) for u in await team_service.team_members(session, team)]


@router.patch("/{team_id}/team_members", summary="Add agents to a team (administrators)", include_in_schema=False)
async def patch_members(account_id: int, team_id: int, body: UserIds, principal: AdminDep, session: SessionDep) -> list[dict[str, Any]]:
    return await add_members(account_id, team_id, body, principal, session)


@router.delete("/{team_id}/team_members", summary="Remove agents from a team (administrators)")
async def remove_members(account_id: int, team_id: int, body: UserIds, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    team = await team_service.get_team(session, account_id, team_id)
    await team_service.change_members(session, team, body.user_ids, add=False)
    return {}
