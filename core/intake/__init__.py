"""Intake: from a webhook, a file or the API to a stored item."""
