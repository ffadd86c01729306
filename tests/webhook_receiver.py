"""A real HTTP receiver for webhook tests, run as its own process on loopback.

    python -m tests.webhook_receiver PORT OUT_FILE SECRET [bot BASE_URL ACCOUNT_ID BOT_TOKEN]

Every request is verified with the ``standardwebhooks`` library (not Postroom's code)
and appended to OUT_FILE as one JSON line: {"id", "verified", "event", "body"}. In
``bot`` mode it also behaves as a tiny agent bot: it greets any customer, and hands the
conversation to people (status ``open``) when the customer asks for a human.
"""

from __future__ import annotations

import json
import sys

import httpx
import uvicorn
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def build(out_file: str, secret: str, bot: tuple[str, str, str] | None) -> Starlette:
    verifier = Webhook(secret)

    async def receive(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            body = verifier.verify(raw, dict(request.headers))
            verified = True
        except WebhookVerificationError:
            body, verified = json.loads(raw or b"{}"), False
        with open(out_file, "a", encoding="utf-8") as out:
            out.write(json.dumps({"id": request.headers.get("webhook-id"), "verified": verified,
                                  "event": body.get("event"), "body": body}) + "\n")
        if not verified:
            return JSONResponse({"error": "bad signature"}, status_code=401)
        if bot is not None:
            await act_as_bot(body, *bot)
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/hook", receive, methods=["POST"])])


async def act_as_bot(event: dict, base_url: str, account_id: str, token: str) -> None:
    if event.get("event") != "message_created" or event.get("message_type") != "incoming":
        return
    conversation = event["conversation"]["id"]
    async with httpx.AsyncClient(base_url=base_url, headers={"api_access_token": token}) as api:
        if "human" in (event.get("content") or "").lower():
            await api.post(f"/api/v1/accounts/{account_id}/conversations/{conversation}/toggle_status",
                           json={"status": "open"})
        else:
            await api.post(f"/api/v1/accounts/{account_id}/conversations/{conversation}/messages",
                           json={"content": "Hello! I am the shop's bot. Type 'human' for a person."})


if __name__ == "__main__":
    port, out_file, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    bot = (sys.argv[5], sys.argv[6], sys.argv[7]) if len(sys.argv) > 4 and sys.argv[4] == "bot" else None
    uvicorn.run(build(out_file, secret, bot), host="127.0.0.1", port=port, log_level="warning")
