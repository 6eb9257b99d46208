"""Tidings: a newsletter dispatcher."""
