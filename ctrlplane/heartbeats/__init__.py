"""Heartbeats: each Celery worker and beat process records that it is alive, so the home
page and /readyz can say at once whether deliveries can flow."""
