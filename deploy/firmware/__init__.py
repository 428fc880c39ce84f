"""Firmware harness (API documented below once complete)."""
