"""Outgoing webhooks: an outbox written with each change, sent signed by the workers."""
