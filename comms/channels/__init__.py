"""Channel adapters (SendGrid email, Slack, Statuspage, signed webhooks) and the dry-run outbox; ``registry`` lists them."""
