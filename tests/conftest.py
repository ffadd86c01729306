"""Test harness: a real database (SQLite or PostgreSQL), migrated once per session.

Choose the database with ``POSTROOM_TEST_DATABASE=sqlite`` (default) or
``POSTROOM_TEST_DATABASE=postgresql``; PostgreSQL is reached at
``POSTROOM_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``) and a
fresh database ``postroom_test`` is created there for the run.

The application commits for real, so tests are isolated by tenancy instead of by
rollback: each test makes its own account, and every query is scoped to an account.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from app.config import Settings
from app.migrate import upgrade
from app.runtime import Runtime
from tests.factories import TenantFactory

ROOT = Path(__file__).resolve().parent.parent
TEST_DATABASE = os.environ.get("POSTROOM_TEST_DATABASE", "sqlite")
PG_URL = os.environ.get("POSTROOM_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
#: One database per run, so two runs on one machine never share (or drop) each other's.
PG_TEST_DB = f"postroom_test_{os.getpid()}"


def pytest_report_header(config: pytest.Config) -> str:
    return f"postroom test database: {TEST_DATABASE}"


async def _recreate_pg_database(name: str) -> str:
    import asyncpg

    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("postroom-data")


@pytest.fixture(scope="session")
def database_url(data_dir: Path) -> Iterator[str]:
    """A freshly migrated database for the whole run (a PostgreSQL one is dropped after)."""
    if TEST_DATABASE == "postgresql":
        url = asyncio.run(_recreate_pg_database(PG_TEST_DB))
    elif TEST_DATABASE == "sqlite":
        url = f"sqlite:///{data_dir / 'postroom-test.db'}"
    else:
        raise pytest.UsageError(f"POSTROOM_TEST_DATABASE must be sqlite or postgresql, not {TEST_DATABASE}")
    upgrade(Settings(database_url=url).resolved_database_url)
    yield url
    if TEST_DATABASE == "postgresql":
        asyncio.run(_drop_pg_database(PG_TEST_DB))


async def _drop_pg_database(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=data_dir, secret_key="test-secret-key")


@pytest_asyncio.fixture(scope="session")
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = Runtime.from_settings(settings)
    yield rt
    await rt.db.dispose()


@pytest_asyncio.fixture(scope="session")
async def app(runtime: Runtime):  # type: ignore[no-untyped-def]
    from app.main import create_app

    return create_app(runtime.settings, runtime=runtime)


@pytest_asyncio.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://postroom.test") as c:
        yield c


@pytest.fixture
def tenants(runtime: Runtime) -> TenantFactory:
    return TenantFactory(runtime)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


class ServerProcess:
    """A ``postroom serve`` child process on the test database."""

    def __init__(self, settings: Settings, data_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_base = f"ws://127.0.0.1:{self.port}"
        full_env = {
            **os.environ,
            "POSTROOM_DATABASE_URL": settings.database_url or "",
            "POSTROOM_DATA_DIR": str(data_dir),
            "POSTROOM_SECRET_KEY": "test-secret-key",
            "POSTROOM_LOG_FORMAT": "json",
            # Every test server may be the one whose webhook worker picks up a delivery
            # (they share the database): all of them reach loopback receivers, quickly.
            "POSTROOM_WEBHOOK_ALLOW_PRIVATE": "true",
            "POSTROOM_WEBHOOK_BACKOFF": "0.3,0.6,1",
            **env,
        }
        self.log_path = data_dir / f"server-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
            cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        try:
            wait_for_http(self.base + "/healthz", process=self.process)
        except BaseException:
            self.stop()  # a server that did not come up in time must not linger and hold connections
            raise

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()


@pytest.fixture(scope="session")
def live_server(settings: Settings, data_dir: Path) -> Iterator[str]:
    """A real ``postroom serve`` process on the test database; yields its base URL.

    Its connector runner and SLA scheduler are off: it lives through the whole session,
    tests that poll channels run their own runner on the inboxes they make
    (tests/test_telegram.py), and tests of clocks set in the past step through them by
    hand (a scheduler would end them between two steps).
    """
    server = ServerProcess(settings, data_dir, POSTROOM_CONNECTOR_RUNNER="false", POSTROOM_SLA_SCHEDULER="false")
    try:
        yield server.base
    finally:
        server.stop()


@pytest.fixture
def start_server(settings: Settings, data_dir: Path) -> Iterator:
    """Start extra server processes (stopped at the end of the test)."""
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        server = ServerProcess(settings, data_dir, **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
