"""Segments: saved audience rules, counted and used to narrow an issue's lists."""
