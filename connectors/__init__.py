"""Channel adapters: each package turns one platform's data into InboundMessage."""
