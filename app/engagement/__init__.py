"""Engagement: tracked links and opens, machine traffic told apart, rollups and guardrails."""
