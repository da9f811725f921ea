"""The operators' admin: webhooks are edited through services; logs are read-only.

One module per page: `webhook_admin` (with its form and list filters), `delivery_admin`,
`attempt_admin`, and `event_recipients` (a section of the events app's event page).
Importing the package registers them all.
"""

from webhooks.admin import attempt_admin, delivery_admin, event_recipients, webhook_admin

__all__ = ["attempt_admin", "delivery_admin", "event_recipients", "webhook_admin"]
