"""Test helpers shared across suites: a controllable clock and a recording channel."""
