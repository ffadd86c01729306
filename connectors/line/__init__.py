"""LINE Messaging API (signed webhooks, reply and push).

``connectors.line.sandbox`` is a loopback Messaging API and webhook sender for tests and demos.
"""

from connectors.line.connector import LineConnector

__all__ = ["LineConnector"]
