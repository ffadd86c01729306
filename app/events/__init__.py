"""The event log: every change appends an event in the same transaction."""
