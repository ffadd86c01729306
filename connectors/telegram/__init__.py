"""Telegram Bot API channel: long polling with ``getUpdates``, replies with ``sendMessage``.

``connectors.telegram.sandbox`` is a loopback Bot API server for tests and demos.
"""

from connectors.telegram.connector import TelegramConnector

__all__ = ["TelegramConnector"]
