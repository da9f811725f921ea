"""The operator console: the admin dashboard's reads (selectors) and its page, and what
the webhook, delivery and event pages show (health, reasons, HTML fragments)."""
