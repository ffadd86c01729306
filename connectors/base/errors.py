"""The typed errors a connector raises; the runner decides what each one means.

=====================  ====================================================================
error                  what the runner does
=====================  ====================================================================
``RateLimited``        waits ``retry_after`` seconds (never less), then tries again
``TransientError``     backs off with jitter and tries again (network, 5xx, conflicts)
``AuthFailed``         marks the inbox ``auth_failed``; retries slowly, at once when the
                       inbox's credentials change
``NotConfigured``      marks the inbox ``disabled`` until its settings change
``PermanentSendError`` marks the reply ``failed`` with the platform's code and text
=====================  ====================================================================

Messages must never contain credentials: connectors redact them (see
:func:`connectors.base.connector.redact`).
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error a connector raises."""


class TransientError(ConnectorError):
    """Worth retrying as is: the network, the platform's 5xx, a conflict that will pass."""


class RateLimited(TransientError):
    """The platform asked us to wait ``retry_after`` seconds before the next call."""

    def __init__(self, retry_after: float, message: str = "rate limited") -> None:
        super().__init__(f"{message} (retry after {retry_after:g}s)")
        self.retry_after = max(0.0, float(retry_after))


class AuthFailed(ConnectorError):
    """The platform refused the credentials (revoked or mistyped token)."""


class NotConfigured(ConnectorError):
    """The inbox lacks a setting or secret the connector needs."""


class PermanentSendError(ConnectorError):
    """The platform refused this one message for good (blocked by the user, chat not found…)."""

    def __init__(self, code: int | str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text
