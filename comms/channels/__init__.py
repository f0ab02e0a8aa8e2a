"""Channel adapters: SendGrid email, Slack, Statuspage, and the dry-run outbox."""
