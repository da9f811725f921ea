"""WSGI entry point for gunicorn: `gunicorn ctrlplane.wsgi`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctrlplane.settings")

application = get_wsgi_application()

# After setup, before serving: a settings Error (a public key in production) stops the
# worker, and gunicorn's master with it (ctrlplane.checks.EXIT_REFUSED).
from ctrlplane.checks import refuse_to_start_on_errors  # noqa: E402 - needs the apps loaded

refuse_to_start_on_errors("web")
