"""TikTok Shop customer service API: conversations and messages pulled, replies sent."""

from connectors.tiktok_shop.connector import TikTokShopConnector

__all__ = ["TikTokShopConnector"]
