"""Routing: owners, the outbox of tickets, spikes, tracker status and replies."""
