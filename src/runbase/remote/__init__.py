"""Talking to a team server: the client, the outbox of runs to publish, push and pull."""
