"""eBay buyer messages through the REST Message API: conversations pulled, replies sent."""

from connectors.ebay.connector import EbayConnector

__all__ = ["EbayConnector"]
