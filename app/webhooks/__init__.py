"""Outbound events: signed, retried, ordered per conversation, logged; and agent bots."""
