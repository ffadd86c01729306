"""WhatsApp Business Cloud API (Meta webhooks + ``/{phone-number-id}/messages``).

``connectors.whatsapp.sandbox`` is a loopback Cloud API and webhook sender for tests and demos.
"""

from connectors.whatsapp.connector import WhatsAppConnector

__all__ = ["WhatsAppConnector"]
