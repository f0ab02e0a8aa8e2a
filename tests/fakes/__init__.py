"""Loopback fakes of SendGrid, Slack and Statuspage that validate requests against the vendor specs."""
