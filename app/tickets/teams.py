"""Teams and their members."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, Invalid, NotFound
from app.models import Team, TeamMember, User


async def get_team(session: AsyncSession, account_id: int, team_id: int) -> Team:
    """A team of the account; NotFound otherwise."""
    team = await session.scalar(select(Team).where(Team.id == team_id, Team.account_id == account_id))
    if team is None:
        raise NotFound("Team")
    return team


async def list_teams(session: AsyncSession, account_id: int) -> list[Team]:
    """The account's teams."""
    return list(await session.scalars(select(Team).where(Team.account_id == account_id).order_by(Team.id)))


async def save_team(
    session: AsyncSession,
    account_id: int,
    team: Team | None,
    *,
    name: str | None,
    description: str | None = None,
    allow_auto_assign: bool | None = None,
) -> Team:
    """Create a team (``team`` None) or change one."""
    if team is None:
        if not name or not name.strip():
            raise Invalid("name can't be blank", field="name")
        team = Team(account_id=account_id, name=name.strip())
        session.add(team)
    elif name:
        team.name = name.strip()
    if description is not None:
        team.description = description
    if allow_auto_assign is not None:
        team.allow_auto_assign = allow_auto_assign
    with session.no_autoflush:
        clash = await session.scalar(
            select(Team.id).where(Team.account_id == account_id, Team.name == team.name, Team.id != (team.id or 0))
        )
    if clash is not None:
        raise Conflict("name has already been taken", errors=[{"field": "name", "message": "taken"}])
    await session.flush()
    return team


async def team_members(session: AsyncSession, team: Team) -> list[User]:
    """The team's agents."""
    rows = await session.scalars(
        select(User).join(TeamMember, TeamMember.user_id == User.id)
        .where(TeamMember.team_id == team.id).order_by(User.id)
    )
    return list(rows)


async def change_members(session: AsyncSession, team: Team, user_ids: list[int], *, add: bool) -> None:
    """Add or remove agents of the team's account."""
    ids = sorted(set(int(u) for u in user_ids))
    valid = set(await session.scalars(select(User.id).where(User.account_id == team.account_id, User.id.in_(ids))))
    if set(ids) - valid:
        raise NotFound("Agent", field="user_ids")
    present = set(await session.scalars(select(TeamMember.user_id).where(TeamMember.team_id == team.id)))
    if add:
        for user_id in ids:
            if user_id not in present:
                session.add(TeamMember(team_id=team.id, user_id=user_id))
    else:
        await session.execute(delete(TeamMember).where(TeamMember.team_id == team.id, TeamMember.user_id.in_(ids)))
    await session.flush()
