"""Accounts, people and access tokens."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.passwords import hash_password, verify_password
from app.auth.tokens import new_token, token_digest
from app.errors import Conflict, Invalid, NotFound, Unauthorized
from app.models import AccessToken, Account, User, utcnow
from app.models.accounts import AVAILABILITY, BOT_ROLE, ROLES


@dataclass(frozen=True)
class NewUser:
    """A user just created, with the one copy of their access token."""

    user: User
    access_token: str


async def create_account(session: AsyncSession, name: str) -> Account:
    """A new, empty account."""
    if not name.strip():
        raise Invalid("name can't be blank", field="name")
    account = Account(name=name.strip(), settings={})
    session.add(account)
    await session.flush()
    return account


async def create_user(
    session: AsyncSession,
    account_id: int,
    *,
    email: str,
    name: str,
    role: str = "agent",
    password: str | None = None,
) -> NewUser:
    """A new agent or administrator with an API access token."""
    email = email.strip().lower()
    if "@" not in email:
        raise Invalid("email is not valid", field="email")
    if role not in (*ROLES, BOT_ROLE):
        raise Invalid(f"role must be one of {', '.join(ROLES)}", field="role")
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict("email has already been taken", errors=[{"field": "email", "message": "taken"}])
    user = User(
        account_id=account_id,
        email=email,
        name=name.strip() or email,
        role=role,
        password_hash=hash_password(password) if password else None,
        custom_attributes={},
    )
    session.add(user)
    await session.flush()
    token = await issue_token(session, user)
    return NewUser(user, token)


async def issue_token(session: AsyncSession, user: User, kind: str = "api") -> str:
    """A new access token for ``user``; only its digest is stored."""
    token = new_token()
    session.add(AccessToken(user_id=user.id, token_digest=token_digest(token), kind=kind))
    await session.flush()
    return token


async def user_for_token(session: AsyncSession, token: str) -> User | None:
    """The user an access token belongs to, or None."""
    return await session.scalar(
        select(User)
        .join(AccessToken, AccessToken.user_id == User.id)
        .where(AccessToken.token_digest == token_digest(token))
    )


async def api_token_of(session: AsyncSession, user: User) -> AccessToken | None:
    """The user's API token row (for showing that one exists; the token itself is not kept)."""
    return await session.scalar(
        select(AccessToken).where(AccessToken.user_id == user.id, AccessToken.kind == "api")
    )


async def sign_in(session: AsyncSession, email: str, password: str) -> tuple[User, str]:
    """Check a password and issue a session token."""
    user = await session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or not verify_password(user.password_hash, password):
        raise Unauthorized("Invalid login credentials. Please try again.")
    return user, await issue_token(session, user, kind="session")


async def sign_out(session: AsyncSession, token: str) -> None:
    """Revoke a session token."""
    await session.execute(
        delete(AccessToken).where(
            AccessToken.token_digest == token_digest(token), AccessToken.kind == "session"
        )
    )


async def get_agent(session: AsyncSession, account_id: int, user_id: int) -> User:
    """A user of the account; NotFound otherwise."""
    user = await session.scalar(
        select(User).where(User.id == user_id, User.account_id == account_id, User.role != "agent_bot")
    )
    if user is None:
        raise NotFound("Agent")
    return user


async def list_agents(session: AsyncSession, account_id: int) -> list[User]:
    """Every user of the account."""
    return list(await session.scalars(
        select(User).where(User.account_id == account_id, User.role != "agent_bot").order_by(User.id)
    ))


async def update_agent(
    session: AsyncSession,
    user: User,
    *,
    name: str | None = None,
    role: str | None = None,
    availability: str | None = None,
    display_name: str | None = None,
) -> User:
    """Change an agent's name, role or availability."""
    if role is not None:
        if role not in ROLES:
            raise Invalid(f"role must be one of {', '.join(ROLES)}", field="role")
        user.role = role
    if availability is not None:
        if availability not in AVAILABILITY:
            raise Invalid(f"availability must be one of {', '.join(AVAILABILITY)}", field="availability")
        user.availability = availability
    if name:
        user.name = name
    if display_name is not None:
        user.display_name = display_name
    await session.flush()
    return user


async def touch_token(session: AsyncSession, token: str) -> None:
    """Record when a token was last used."""
    await session.execute(
        update(AccessToken)
        .where(AccessToken.token_digest == token_digest(token))
        .values(last_used_at=utcnow())
    )
