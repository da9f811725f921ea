"""The operator console: the admin dashboard's reads (selectors) and its page."""
