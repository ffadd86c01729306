"""Lazada Open Platform IM: chat sessions and messages pulled, replies sent."""

from connectors.lazada.connector import LazadaConnector

__all__ = ["LazadaConnector"]
