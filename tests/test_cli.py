"""The ``postroom`` command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from tests.conftest import ROOT


def run_cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "POSTROOM_DATABASE_URL": settings.database_url,
           "POSTROOM_DATA_DIR": str(settings.data_dir), "POSTROOM_SECRET_KEY": "test-secret-key"}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


async def test_admin_create_prints_one_json_line_with_a_working_token(settings, client):
    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    result = run_cli(settings, "admin", "create", "--email", email, "--name", "CLI Admin",
                     "--password", "s3cret-pass", "--account", f"CLI {email}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    created = json.loads(lines[0])
    assert set(created) == {"account_id", "user_id", "access_token"}
    profile = await client.get("/api/v1/profile", headers={"api_access_token": created["access_token"]})
    assert profile.status_code == 200 and profile.json()["role"] == "administrator"
    assert profile.json()["accounts"][0]["id"] == created["account_id"]


async def test_demo_fills_a_multilingual_inbox_once(settings, client):
    first = run_cli(settings, "demo")
    assert first.returncode == 0, first.stderr
    login = json.loads(first.stdout.strip().splitlines()[-1])
    second = run_cli(settings, "demo")
    assert json.loads(second.stdout.strip().splitlines()[-1])["account_id"] == login["account_id"]

    signed = await client.post("/auth/sign_in", json={"email": login["email"], "password": login["password"]})
    headers = {"api_access_token": signed.json()["data"]["access_token"]}
    data = (await client.get(f"/api/v1/accounts/{login['account_id']}/conversations?status=all",
                             headers=headers)).json()["data"]
    texts = " ".join(m["content"] for c in data["payload"] for m in c["messages"])
    assert data["meta"]["all_count"] >= 9
    for sample in ("ครับ", "Chào", "سلام", "你好", "order"):
        assert sample in texts or sample.lower() in texts.lower(), sample
    inboxes = (await client.get(f"/api/v1/accounts/{login['account_id']}/inboxes", headers=headers)).json()["payload"]
    assert {"Channel::Email", "Channel::WebWidget", "Channel::Line", "Channel::Shopee"} <= {i["channel_type"] for i in inboxes}
