"""Bounces and complaints: parsing reports and provider webhooks, and recording them."""
