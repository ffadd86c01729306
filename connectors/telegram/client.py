"""A minimal Telegram Bot API client: one method call, one file download, typed errors.

Wire format (https://core.telegram.org/bots/api#making-requests): requests go to
``<base>/bot<token>/<method>``; every answer is JSON with ``ok``; on success the value
is in ``result``, otherwise ``error_code``, ``description`` and, for flood control,
``parameters.retry_after`` (https://core.telegram.org/bots/api#responseparameters).
Files are fetched from ``<base>/file/bot<token>/<file_path>``.

The token is part of every URL, so error texts are redacted before they leave here.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from connectors.base import AuthFailed, RateLimited, TransientError, redact

DEFAULT_BASE_URL = "https://api.telegram.org"
#: Flood control without a ``retry_after`` (never seen, but the field is optional).
DEFAULT_RETRY_AFTER = 5.0


class Refused(Exception):
    """A 4xx answer other than 401/404/429: the caller decides whether it is permanent."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


class BotApi:
    """Calls one bot's methods on one Bot API server (Telegram's, or the sandbox)."""

    def __init__(self, token: str, *, base_url: str = DEFAULT_BASE_URL, http: httpx.AsyncClient | None = None) -> None:
        self.token = token
        self.base_url = base_url.rstrip("/")
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0))
        self._own_http = http is None

    async def aclose(self) -> None:
        """Close the HTTP connections (when this client made them)."""
        if self._own_http:
            await self._http.aclose()

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Call ``method``; returns its ``result`` or raises a typed error."""
        url = f"{self.base_url}/bot{self.token}/{method}"
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = httpx.Timeout(timeout, connect=10.0)
        try:
            if files:
                form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (params or {}).items()}
                response = await self._http.post(url, data=form, files=files, **extra)
            else:
                response = await self._http.post(url, json=params or {}, **extra)
        except httpx.HTTPError as exc:
            raise TransientError(self._redact(f"{method}: {type(exc).__name__}: {exc}")) from None
        return self._result(method, response)

    async def download(self, file_path: str, *, max_bytes: int) -> bytes:
        """The bytes of a file ``getFile`` pointed to."""
        url = f"{self.base_url}/file/bot{self.token}/{file_path.lstrip('/')}"
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as exc:
            raise TransientError(self._redact(f"file download: {type(exc).__name__}: {exc}")) from None
        if response.status_code in (401, 404):
            raise Refused(response.status_code, "file download refused")
        if response.status_code >= 400:
            raise TransientError(f"file download: HTTP {response.status_code}")
        if len(response.content) > max_bytes:
            raise Refused(413, f"file larger than {max_bytes} bytes")
        return response.content

    def _result(self, method: str, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("ok") is True:
            return body.get("result")
        body = body if isinstance(body, dict) else {}
        code = int(body.get("error_code") or response.status_code)
        description = self._redact(str(body.get("description") or f"HTTP {response.status_code}"))
        parameters = body.get("parameters") or {}
        if code == 429:
            retry_after = parameters.get("retry_after", DEFAULT_RETRY_AFTER)
            raise RateLimited(float(retry_after), f"{method}: {description}")
        if code in (401, 404):  # a revoked or mistyped token answers 401, a malformed one 404
            raise AuthFailed(f"{method}: {code} {description}")
        if code >= 500 or code == 409 or not 400 <= code < 500:
            raise TransientError(f"{method}: {code} {description}")
        raise Refused(code, description)

    def _redact(self, text: str) -> str:
        return redact(text, [self.token])
