"""Django settings, read from the environment.

Every variable has a default that runs on one machine with nothing installed:
SQLite under `var/` and kombu's filesystem transport as the Celery broker.
Set DATABASE_URL and CELERY_BROKER_URL to use PostgreSQL and Redis.
"""

from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
import django_stubs_ext

from ctrlplane.env import ConfigurationError, env_bool, env_float, env_int, env_list, env_str

# Lets admin and DRF generics be subscripted at runtime (ModelAdmin[Webhook]) for typing.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CTRLPLANE_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
# The fallback key is public; with DEBUG off the processes refuse it (check ctrlplane.E001).
INSECURE_DEFAULT_SECRET_KEY = "insecure-local-development-key-change-me"  # noqa: S105
SECRET_KEY = env_str("SECRET_KEY", INSECURE_DEFAULT_SECRET_KEY)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
# The public base URL of this service (https://ctrlplane.example.com). Webhooks may not
# target it, nor any host in ALLOWED_HOSTS: a webhook must not feed events back in.
SITE_URL = env_str("SITE_URL", "")
try:
    _site = urlsplit(SITE_URL)
    _site_ok = _site.scheme in ("http", "https") and bool(_site.hostname) and _site.port != 0
except ValueError:  # a port that is not a number, or out of range
    _site_ok = False
if SITE_URL and not _site_ok:
    raise ConfigurationError(
        f"SITE_URL must be an http(s) URL like https://ctrl.example.com, got {SITE_URL!r}"
    )
# The port the web process binds (ctrlplane/process.py): loopback on it is this service.
# WEB_PORT wins over PORT, as in process.py: under honcho (`dev.py run`) each process has a
# PORT of its own, and the worker must guard the web process's port, not its own.
WEB_PORT = env_int("WEB_PORT", env_int("PORT", 8000))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "ctrlplane.tenants",
    "ctrlplane.heartbeats",
    "ctrlplane.pages",
    "events",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ctrlplane.urls"
WSGI_APPLICATION = "ctrlplane.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'ctrlplane.sqlite3'}")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60), conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while a worker writes; the timeout rides out short locks.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# The admin shows times to the second (ctrlplane/formats/en/formats.py).
FORMAT_MODULE_PATH = ["ctrlplane.formats"]

STATIC_URL = "static/"
# `collectstatic` writes here and WhiteNoise serves it (admin, home page, API docs assets).
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))

# --- Celery -----------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://localhost/")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    for _sub in ("queue", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
else:
    # Must exceed the longest task (an HTTP timeout plus bookkeeping); ETAs are never long
    # because retries are scheduled in the database, not in the broker.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 300),
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_WORKER_PREFETCH_MULTIPLIER", 4)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = "UTC"
# Worker and beat each record a heartbeat this often (seconds); beat's comes from its
# scheduler loop (ctrlplane/heartbeats/beat.py). The home page and /readyz show them.
HEARTBEAT_INTERVAL = env_float("HEARTBEAT_INTERVAL", 10)
CELERY_BEAT_SCHEDULER = "ctrlplane.heartbeats.beat:HeartbeatScheduler"

# --- Event bus --------------------------------------------------------------
EVENTS_BUS_BUFFER_SIZE = env_int("EVENTS_BUS_BUFFER_SIZE", 1000)

# --- Logging ----------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOG_FORMAT = env_str("LOG_FORMAT", "json")  # json | plain
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact": {"()": "ctrlplane.logging.RedactSecrets"},
        "routine_tasks": {"()": "webhooks.log_filters.RoutineTasksAtDebug"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain" if LOG_FORMAT == "plain" else "json",
            "filters": ["redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # Celery's lines about the sweep (sent, received, succeeded) every few seconds: DEBUG.
    "loggers": {
        name: {"filters": ["routine_tasks"]}
        for name in ("celery.beat", "celery.worker.strategy", "celery.app.trace")
    },
}
# Keep Django's logging config (JSON, redaction) in Celery processes too.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

VAR_DIR.mkdir(parents=True, exist_ok=True)
EVENTS_MAX_PAYLOAD_BYTES = env_int("EVENTS_MAX_PAYLOAD_BYTES", 256 * 1024)

# --- Webhooks (the defaults live here alone; meaning: webhooks/conf.py, docs) -----
_DEFAULT_SCHEDULE = ["0", "5", "300", "1800", "7200", "18000", "36000", "36000"]
WEBHOOKS_RETRY_SCHEDULE = [float(s) for s in env_list("WEBHOOKS_RETRY_SCHEDULE", _DEFAULT_SCHEDULE)]
WEBHOOKS_RETRY_JITTER = env_float("WEBHOOKS_RETRY_JITTER", 0.2)
WEBHOOKS_RETRY_AFTER_CAP = env_float("WEBHOOKS_RETRY_AFTER_CAP", 3600)
WEBHOOKS_TIMEOUT = env_float("WEBHOOKS_TIMEOUT", 15)
WEBHOOKS_CONNECT_TIMEOUT = env_float("WEBHOOKS_CONNECT_TIMEOUT", 5)
WEBHOOKS_RESPONSE_BODY_LIMIT = env_int("WEBHOOKS_RESPONSE_BODY_LIMIT", 20_000)
WEBHOOKS_SENDING_LEASE = env_float("WEBHOOKS_SENDING_LEASE", 60)
WEBHOOKS_REDISPATCH_AFTER = env_float("WEBHOOKS_REDISPATCH_AFTER", 30)
WEBHOOKS_SWEEP_INTERVAL = env_float("WEBHOOKS_SWEEP_INTERVAL", 5)
WEBHOOKS_SWEEP_BATCH_SIZE = env_int("WEBHOOKS_SWEEP_BATCH_SIZE", 500)
WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT = env_int("WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT", 4)
WEBHOOKS_ENGINE_SENDERS = env_int("WEBHOOKS_ENGINE_SENDERS", 64)
WEBHOOKS_ENGINE_MAX_IN_FLIGHT_PER_TENANT = env_int("WEBHOOKS_ENGINE_MAX_IN_FLIGHT_PER_TENANT", 32)
WEBHOOKS_ENGINE_MAX_HELD = env_int("WEBHOOKS_ENGINE_MAX_HELD", 2000)
WEBHOOKS_LANE_MAX_QUEUED = env_int("WEBHOOKS_LANE_MAX_QUEUED", 100)
WEBHOOKS_LANE_OVERFLOW_DELAY = env_float("WEBHOOKS_LANE_OVERFLOW_DELAY", 10)
WEBHOOKS_DISABLE_AFTER = env_float("WEBHOOKS_DISABLE_AFTER", 5 * 24 * 3600)
WEBHOOKS_SECRET_GRACE_PERIOD = env_float("WEBHOOKS_SECRET_GRACE_PERIOD", 24 * 3600)
WEBHOOKS_SECRET_BYTES = env_int("WEBHOOKS_SECRET_BYTES", 32)
WEBHOOKS_ALLOWED_NETWORKS = env_list("WEBHOOKS_ALLOWED_NETWORKS", [])
WEBHOOKS_ENCRYPTION_KEYS = env_list("WEBHOOKS_ENCRYPTION_KEYS", [])

WEBHOOKS_RETENTION_DAYS = env_float("WEBHOOKS_RETENTION_DAYS", 30)
WEBHOOKS_RETENTION_TIME_BUDGET = env_float("WEBHOOKS_RETENTION_TIME_BUDGET", 60)
WEBHOOKS_RETENTION_INTERVAL = env_float("WEBHOOKS_RETENTION_INTERVAL", 3600)

CELERY_BEAT_SCHEDULE = {
    "webhooks-sweep": {"task": "webhooks.tasks.sweep", "schedule": WEBHOOKS_SWEEP_INTERVAL},
    "webhooks-purge-history": {
        "task": "webhooks.tasks.purge_history",
        "schedule": WEBHOOKS_RETENTION_INTERVAL,
    },
}
# A broker outage must not stall the publisher's request for long: the sweeper re-sends
# whatever could not be handed over.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}

# --- API ----------------------------------------------------------------------
API_RATE_LIMIT = env_str("API_RATE_LIMIT", "1200/min")
# Failed API-key authentications per client address; past it, 429 without a key lookup.
API_AUTH_FAILURE_RATE = env_str("API_AUTH_FAILURE_RATE", "60/min")
# Reverse proxies whose X-Forwarded-For names the client (CIDRs). Empty: the client is the
# connection's peer, and X-Forwarded-For is ignored (anyone can write it).
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["ctrlplane.tenants.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["ctrlplane.api.ApiKeyRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "ctrlplane.api.CreatedCursorPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["ctrlplane.parsers.StrictJSONParser"],
    "EXCEPTION_HANDLER": "ctrlplane.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ctrlplane API",
    "DESCRIPTION": "Register webhooks, publish events and inspect deliveries for your tenant.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and ReDoc come from drf-spectacular-sidecar's static files (pinned in
    # pyproject.toml), never from a CDN: the docs must work on a host without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No badge that sends the schema's URL to validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}
# Bodies beyond this are refused with 413 before they are parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("API_MAX_BODY_BYTES", 1024 * 1024)
# The throttle counts in this cache; point CACHE_URL at Redis so all web processes share it.
CACHE_URL = env_str("CACHE_URL", "locmem://")
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- HTTPS (behind a TLS-terminating proxy; docs/configuration.md, "Production") ----
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Probes and load balancers call these over plain HTTP on the private side.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# "HTTP_X_FORWARDED_PROTO,https": trust the proxy's header saying the request came over TLS.
# Only behind a proxy that sets (or strips) that header on every request.
_proxy_ssl_header = env_list("SECURE_PROXY_SSL_HEADER", [])
if len(_proxy_ssl_header) not in (0, 2):
    raise ConfigurationError(
        "SECURE_PROXY_SSL_HEADER must be a header and a value, e.g. HTTP_X_FORWARDED_PROTO,https"
    )
SECURE_PROXY_SSL_HEADER = (
    (_proxy_ssl_header[0], _proxy_ssl_header[1]) if _proxy_ssl_header else None
)

# --- Operations ------------------------------------------------------------------
# /metrics answers requests bearing this token, or from these networks. Loopback is trusted
# by default only with DEBUG on: behind a reverse proxy on the same host every request comes
# from loopback, so production trusts an address range only when the operator names it.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = env_list(
    "METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"] if DEBUG else []
)
