"""Integration tests: the channel adapters and `comms check` against loopback vendor fakes."""
