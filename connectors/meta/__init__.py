"""Facebook Messenger and Instagram (Meta webhooks + the Graph Send API).

``connectors.meta.sandbox`` is a loopback Graph API and webhook sender for tests and demos;
``connectors.meta.graph`` and ``connectors.meta.webhooks`` are shared with WhatsApp.
"""

from connectors.meta.connector import FacebookConnector, InstagramConnector

__all__ = ["FacebookConnector", "InstagramConnector"]
