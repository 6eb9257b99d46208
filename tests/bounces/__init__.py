"""Tests of the bounce and complaint parsers."""
