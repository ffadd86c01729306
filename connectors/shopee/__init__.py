"""Shopee Open Platform v2 seller chat: conversations and messages pulled, replies sent."""

from connectors.shopee.connector import ShopeeConnector

__all__ = ["ShopeeConnector"]
