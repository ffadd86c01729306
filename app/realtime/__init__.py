"""Live updates to agents: the event log streamed over websockets, resumable by seq."""
