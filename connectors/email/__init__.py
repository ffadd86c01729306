"""The e-mail channel: IMAP pull, SMTP out, SMTP in, and robust MIME parsing; the
Amazon and Walmart mail relays are e-mail inboxes with a marketplace's rules."""

from connectors.email.connector import AmazonRelayConnector, EmailConnector, WalmartRelayConnector

__all__ = ["AmazonRelayConnector", "EmailConnector", "WalmartRelayConnector"]
