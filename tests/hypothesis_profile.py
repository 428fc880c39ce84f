"""Hypothesis settings for CI: under CI=true every property test draws the same examples on every run
(derandomize), so a CI failure reproduces on any machine and a green run stays green. Imported by tests/conftest.py
before the test modules build their own settings, which inherit these."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)

if os.environ.get("CI") == "true":
    settings.load_profile("ci")
