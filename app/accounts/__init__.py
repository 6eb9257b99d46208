"""Console accounts: people, their sign-in factors and sessions, API keys, and the audit log."""
