"""A minimal Graph API client shared by Meta's channels (Messenger, Instagram, WhatsApp).

Wire format: requests go to ``<base>/<version>/<path>`` with the access token as an
OAuth Bearer header (so it never appears in a URL or an error text); errors are
``{"error": {"message", "type", "code", "error_subcode", "error_data", "fbtrace_id"}}``
(https://developers.facebook.com/docs/graph-api/guides/error-handling,
https://developers.facebook.com/docs/messenger-platform/error-codes,
https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).

Throttling codes (4, 17, 32, 613; WhatsApp 80007, 130429, 131056) become
:class:`RateLimited`, a refused token (190, HTTP 401) :class:`AuthFailed`, Meta's
"retry later" codes (1, 2, 131000, 131016) and 5xx :class:`TransientError`; anything
else is a :class:`GraphError` the channel turns into a permanent failure of the reply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from connectors.base import AuthFailed, RateLimited, TransientError, redact
from connectors.base.media import MAX_MEDIA_BYTES, Media, download

DEFAULT_GRAPH_URL = "https://graph.facebook.com"
DEFAULT_VERSION = "v21.0"
#: Meta sends no Retry-After with most throttling errors; wait this long then.
DEFAULT_RETRY_AFTER = 60.0
THROTTLED = frozenset({4, 17, 32, 613, 80007, 130429, 131056})
RETRY_LATER = frozenset({1, 2, 131000, 131016})


class GraphError(Exception):
    """A refusal the caller decides about (code, subcode, Meta's message)."""

    def __init__(self, code: int, message: str, subcode: int | None = None, details: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.subcode = subcode
        self.message = message
        self.details = details


class GraphApi:
    """Calls one token's Graph API endpoints (Meta's, or a sandbox's)."""

    def __init__(self, token: str, *, base_url: str = DEFAULT_GRAPH_URL, version: str = DEFAULT_VERSION,
                 http: httpx.AsyncClient | None = None, default_retry_after: float = DEFAULT_RETRY_AFTER) -> None:
        self.token = token
        self.default_retry_after = default_retry_after
        self.base_url = base_url.rstrip("/")
        self.version = version.strip("/")
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0))
        self._own_http = http is None

    @classmethod
    def from_settings(cls, token: str, settings: Mapping[str, Any]) -> GraphApi:
        """A client for ``token`` pointed where an inbox's settings say (``graph_base_url``,
        ``graph_version``, ``rate_limit_retry_seconds``; Meta's defaults otherwise)."""
        return cls(token, base_url=str(settings.get("graph_base_url") or DEFAULT_GRAPH_URL),
                   version=str(settings.get("graph_version") or DEFAULT_VERSION),
                   default_retry_after=float(settings.get("rate_limit_retry_seconds") or DEFAULT_RETRY_AFTER))

    async def aclose(self) -> None:
        """Close the HTTP connections (when this client made them)."""
        if self._own_http:
            await self._http.aclose()

    def url(self, path: str) -> str:
        """The full URL of a Graph path."""
        return f"{self.base_url}/{self.version}/{path.lstrip('/')}"

    async def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                      data: dict[str, str] | None = None, files: dict[str, tuple[str, bytes, str]] | None = None,
                      timeout: float | None = None) -> Any:
        """Call ``path``; returns the decoded JSON body or raises a typed error."""
        headers = {"Authorization": f"Bearer {self.token}"}
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        try:
            response = await self._http.request(method, self.url(path), json=json, params=params, data=data,
                                                files=files, headers=headers, **extra)
        except httpx.HTTPError as exc:
            raise TransientError(self._redact(f"{path}: {type(exc).__name__}: {exc}")) from None
        return self._result(path, response)

    async def download(self, url: str, *, max_bytes: int = MAX_MEDIA_BYTES) -> Media:
        """The file behind a media URL the Graph API gave, fetched with the token (as the
        WhatsApp *Download media* step asks); :class:`MediaUnavailable` when refused."""
        return await download(self._http, url, headers={"Authorization": f"Bearer {self.token}"},
                              max_bytes=max_bytes, secrets=[self.token])

    def _result(self, path: str, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code < 400 and not (isinstance(body, dict) and "error" in body):
            return body
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        code = _int(error.get("code")) or response.status_code
        subcode = _int(error.get("error_subcode"))
        message = self._redact(str(error.get("message") or f"HTTP {response.status_code}"))
        details = (error.get("error_data") or {}).get("details") if isinstance(error.get("error_data"), dict) else None
        if code in THROTTLED or response.status_code == 429:
            retry_after = _float(response.headers.get("retry-after")) or self.default_retry_after
            raise RateLimited(retry_after, f"{path}: {code} {message}")
        if code == 190 or response.status_code == 401:
            raise AuthFailed(f"{path}: {code} {message}")
        if code in RETRY_LATER or response.status_code >= 500:
            raise TransientError(f"{path}: {code} {message}")
        raise GraphError(code, message, subcode, self._redact(str(details)) if details else None)

    def _redact(self, text: str) -> str:
        return redact(text, [self.token])


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
