"""The ``postroom`` command: serve, migrate, admin create, demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from app.config import get_settings
from app.db import is_sqlite
from app.logs import configure_logging
from app.migrate import upgrade


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    url = settings.resolved_database_url
    if is_sqlite(url) or args.migrate:
        upgrade(url)
    if args.demo:
        login = asyncio.run(_seed_demo())
        host = "localhost" if args.host in ("0.0.0.0", "127.0.0.1") else args.host
        base = f"http://{host}:{args.port}"
        print(
            f"\nPostroom is starting on {base}\n"
            f"  Inbox:      {base}/\n"
            f"  API docs:   {base}/docs\n"
            f"  Log in as:  {login.email} / {login.password}  (account {login.account_id})\n"
            + (f"  API token:  {login.access_token}\n" if login.access_token else
               f"  API token:  curl -s -X POST {base}/auth/sign_in -H 'content-type: application/json' "
               f"-d '{{\"email\":\"{login.email}\",\"password\":\"{login.password}\"}}'\n"),
            flush=True,
        )
    from app.main import create_app

    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_config=None,
                proxy_headers=True, ws="websockets-sansio", ws_per_message_deflate=settings.stream_compression)
    return 0


async def _seed_demo():  # type: ignore[no-untyped-def]
    from app.demo import seed_demo
    from app.runtime import Runtime

    runtime = Runtime.from_settings(get_settings())
    try:
        return await seed_demo(runtime)
    finally:
        await runtime.db.dispose()


def _migrate(_: argparse.Namespace) -> int:
    upgrade(get_settings().resolved_database_url)
    print("database is at the newest migration")
    return 0


def _admin_create(args: argparse.Namespace) -> int:
    async def run() -> dict[str, object]:
        from sqlalchemy import select

        from app.auth import service as auth_service
        from app.models import Account
        from app.runtime import Runtime

        runtime = Runtime.from_settings(get_settings())
        try:
            async with runtime.db.write_session() as session:
                account = await session.scalar(select(Account).where(Account.name == args.account))
                if account is None:
                    account = await auth_service.create_account(session, args.account)
                new = await auth_service.create_user(
                    session, account.id, email=args.email, name=args.name,
                    role="administrator", password=args.password,
                )
            return {"account_id": account.id, "user_id": new.user.id, "access_token": new.access_token}
        finally:
            await runtime.db.dispose()

    if is_sqlite(get_settings().resolved_database_url):
        upgrade(get_settings().resolved_database_url)
    print(json.dumps(asyncio.run(run())))
    return 0


def _reports_rebuild(args: argparse.Namespace) -> int:
    from app.reports.cli import rebuild

    upgrade(get_settings().resolved_database_url)
    return asyncio.run(rebuild(get_settings(), args.account))


def _demo(_: argparse.Namespace) -> int:
    if is_sqlite(get_settings().resolved_database_url):
        upgrade(get_settings().resolved_database_url)
    login = asyncio.run(_seed_demo())
    print(json.dumps({"account_id": login.account_id, "email": login.email, "password": login.password,
                      "access_token": login.access_token}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="postroom", description="Postroom omnichannel support inbox")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--demo", action="store_true", help="fill in the demo account first")
    serve.add_argument("--migrate", action="store_true", help="upgrade a PostgreSQL database on start too")
    serve.set_defaults(func=_serve)

    commands.add_parser("migrate", help="upgrade the database schema").set_defaults(func=_migrate)

    admin = commands.add_parser("admin", help="manage administrators")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    create = admin_commands.add_parser("create", help="create an administrator (and account)")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--account", default="Default")
    create.set_defaults(func=_admin_create)

    commands.add_parser("demo", help="fill the database with the demo account").set_defaults(func=_demo)
    reports = commands.add_parser("reports", help="reporting events").add_subparsers(dest="reports_command", required=True)
    rebuild = reports.add_parser("rebuild", help="record reporting events from existing data (safe to rerun)")
    rebuild.add_argument("--account", type=int, action="append", help="only this account (repeatable)")
    rebuild.set_defaults(func=_reports_rebuild)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``postroom`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
