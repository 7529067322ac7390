"""Shared network blocks."""
