"""Postroom: an omnichannel support inbox service."""

__version__ = "0.1.0"
