"""Subscribers, lists, sign-up and double opt-in, unsubscribe and preferences."""
