"""Caseline settings: every value comes from the environment, read once here.

Unset variables fall back to the embedded defaults (SQLite file, in-memory channel
layer, Celery running tasks inline) so that ``make run`` works on a bare machine.
Production (``DEBUG`` false) fails loudly when a value it cannot guess is missing.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from cases.api.schema_settings import SCHEMA_SETTINGS as API_SCHEMA_SETTINGS
from cases.schedule import CASES_BEAT_SCHEDULE

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def required(name: str):
    """Return an env variable or raise: production must never guess a secret."""
    value = env.str(name, default="")
    if not value:
        raise ImproperlyConfigured(f"The {name} environment variable is required when DEBUG is off.")
    return value


DEBUG = env.bool("DEBUG", default=False)

if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default="") or secrets.token_urlsafe(50)
else:
    SECRET_KEY = required("SECRET_KEY")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The public base URL of this deployment, used in links and in signature checks of
# providers that sign the full URL (Twilio).
PUBLIC_URL = env.str("PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "channels",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    # Single sign-on through the company's OpenID Connect provider (configured below from
    # the environment; without it no provider is offered and these apps stay idle).
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "anymail",
    "django_htmx",
    "csp",
    "auditlog",
    "customers",
    "connectors",
    "cases",
    "channels_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The page's language: the chooser's cookie (set_language), else the browser's
    # Accept-Language, else LANGUAGE_CODE. No language prefix in URLs (no i18n_patterns).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # After authentication: roles in MFA_REQUIRED_ROLES set up a TOTP authenticator first.
    "config.middleware.MfaEnforcementMiddleware",
    # Configuration audit trail: who changed which setting (config/audit.py).
    "config.audit.ConfigAuditMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

# --- Database ---------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Health checks: a restarted PostgreSQL is reconnected on the next request (or the
    # next connection taken from the pool) instead of failing until the app restarts.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DB_CONN_MAX_AGE = env.int("DB_CONN_MAX_AGE", default=60)
    if env.bool("DB_POOL", default=True):
        # A forked child forgets the pools it inherited; a checkout's health check is cheap.
        import config.db  # noqa: F401

        # Under ASGI every request runs in a thread of its own, so a per-thread persistent
        # connection is a new connection per request; a pool (psycopg_pool) shares them.
        # Forked Celery workers (config/celery.py) keep one persistent connection each instead.
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DB_POOL_MIN_SIZE", default=1),
            "max_size": env.int("DB_POOL_MAX_SIZE", default=10),
            "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
        }
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = DB_CONN_MAX_AGE
else:
    # SQLite (the embedded default): a file the tests can share with a live server.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(BASE_DIR / "test_db.sqlite3")
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"

# A streaming replica for read-only pages (config/db_router.py, config/replica.py). Unset:
# one database, no router, nothing changes.
DATABASE_REPLICA_URL = env.str("DATABASE_REPLICA_URL", default="")
# After a write, the same client reads from the primary for this long (read-your-writes).
CASELINE_REPLICA_PIN_SECONDS = env.float("CASELINE_REPLICA_PIN_SECONDS", default=5.0)
# After a failed connect, the replica is left alone this long and the primary answers.
CASELINE_REPLICA_RETRY_SECONDS = env.float("CASELINE_REPLICA_RETRY_SECONDS", default=10.0)
# Requests that may read from the replica (safe methods only): URL names, or path
# prefixes starting with "/". Reports, CSV exports, lists and queues, API reads.
CASELINE_REPLICA_READ_URLS = env.list(
    "CASELINE_REPLICA_READ_URLS",
    default=[
        "desk:queue",
        "desk:search",
        "desk:board",
        "desk:incidents",
        "desk:topics",
        "report-promises",
        "/desk/reports/",
        "/api/v1/",
    ],
)
if DATABASE_REPLICA_URL:
    if not IS_POSTGRES:
        raise ImproperlyConfigured("DATABASE_REPLICA_URL needs a PostgreSQL DATABASE_URL.")
    DATABASES["replica"] = env.db_url_config(DATABASE_REPLICA_URL)
    for _key in ("ATOMIC_REQUESTS", "CONN_HEALTH_CHECKS", "CONN_MAX_AGE"):
        DATABASES["replica"][_key] = DATABASES["default"][_key]
    _replica_options = DATABASES["replica"].setdefault("OPTIONS", {})
    # A replica that is down costs a request this many seconds before the primary answers.
    _replica_options.setdefault("connect_timeout", env.int("DB_REPLICA_CONNECT_TIMEOUT", default=2))
    if "pool" in DATABASES["default"].get("OPTIONS", {}):
        _replica_options["pool"] = {
            **DATABASES["default"]["OPTIONS"]["pool"],
            "timeout": env.float("DB_REPLICA_POOL_TIMEOUT", default=2.0),
        }
    # Tests: the replica is the same database seen through replication, never a test copy.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    DATABASE_ROUTERS = ["config.db_router.ReplicaRouter"]
    MIDDLEWARE = [*MIDDLEWARE, "config.replica.ReplicaMiddleware"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, Celery broker, cache --------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# A Redis that is down or hung must cost a request a bounded wait, never a hang: every
# client gives up connecting after this many seconds (and the cache and broker on a
# reply after REDIS_SOCKET_TIMEOUT). Webhooks then process inline and live updates are
# skipped (connectors/views.py, channels_app/publish.py).
REDIS_CONNECT_TIMEOUT = env.float("REDIS_CONNECT_TIMEOUT", default=2.0)
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=3.0)
if REDIS_URL:
    # "core" (Redis sorted sets, polled) or "pubsub" (Redis PUBLISH; not yet through the
    # Redis-outage fault test in tests/faults, so not the default). Either way each process's
    # hub (channels_app/hub.py) is the one member of its sockets' groups: one message per
    # process and group.
    CHANNEL_LAYER_BACKEND = {
        "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "core": "channels_redis.core.RedisChannelLayer",
    }[env.str("CHANNEL_LAYER", default="core")]
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": CHANNEL_LAYER_BACKEND,
            "CONFIG": {
                # The hub blocks on Redis for 5 s at a time (BZPOPMIN): its reads may take
                # longer than that. redis-py's own default (5 s) raced the block's answer and
                # dropped every socket of a busy process; a publish is bounded by
                # channels_app.publish instead.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
                        "socket_timeout": 30.0,
                    }
                ],
                "prefix": env.str("CHANNEL_LAYER_PREFIX", default="caseline"),
                # A process's hub receives every event its sockets' groups are sent: room for
                # seconds of them while its event loop is busy (other channels keep 100).
                "channel_capacity": {"hub.*": 2000},
            },
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
    CACHES = {
        "default": {
            "BACKEND": "config.cache.FailSoftRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
                "socket_timeout": REDIS_SOCKET_TIMEOUT,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CELERY_BROKER_URL = "memory://"
    # No broker: tasks run inline, in the caller's process, after the commit that queued them.
    CELERY_TASK_ALWAYS_EAGER = True
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CELERY_TASK_EAGER_PROPAGATES = env.bool("CELERY_TASK_EAGER_PROPAGATES", default=False)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="caseline")
# Queues per job (config/celery.py): ingest, outbound, sweeps and reports each on a queue
# of its own, so each gets its own workers. Off: one queue, consumed by every worker.
CASELINE_CELERY_QUEUES = env.bool("CASELINE_CELERY_QUEUES", default=False)
CELERY_TASK_ROUTES = ("config.celery.route_task",)
if CASELINE_CELERY_QUEUES:
    from kombu import Queue

    # A worker started without -Q consumes them all.
    CELERY_TASK_QUEUES = [
        Queue(name)
        for name in (
            CELERY_TASK_DEFAULT_QUEUE,
            *(f"{CELERY_TASK_DEFAULT_QUEUE}.{job}" for job in ("ingest", "outbound", "sweeps", "reports")),
        )
    ]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing a task must fail fast when the broker is away (the caller has a fallback):
# a bounded connect and read, one quick retry. Workers keep reconnecting on their own.
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_CONNECT_TIMEOUT
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
    # Above the worker's 1 s BRPOP, so an idle worker never times out.
    "socket_timeout": REDIS_SOCKET_TIMEOUT,
    # Tasks are acknowledged late: one taken by a worker that then vanished (killed, its host
    # lost) is handed to another worker this many seconds after it was taken. It must stay
    # above the longest task and the longest countdown (a retry's delay), or a task still
    # running or waiting would be run twice. Redis's default, an hour.
    "visibility_timeout": env.float("CELERY_VISIBILITY_TIMEOUT", default=3600.0),
}
# How often a worker looks for such tasks (kombu's default: every 100 s).
if _restore_every := env.float("CELERY_UNACKED_RESTORE_SECONDS", default=0.0):
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        unacked_restore_interval=_restore_every, unacked_restore_throttle=1
    )
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
# A worker waits out a broker outage of any length instead of exiting after 100 tries.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A webhook whose processing could not be queued is processed inline; after such a
# failure webhooks skip the broker for this many seconds, then try it again.
WEBHOOK_BROKER_RETRY_SECONDS = env.float("WEBHOOK_BROKER_RETRY_SECONDS", default=10.0)
CELERY_TIMEZONE = "UTC"
# Connector health (cases/health.py): a channel is silent after max(its usual gap between
# inbound messages * factor, this many hours) of working time without one; alerts for refused
# signatures and failing sends in the last hour.
CHANNEL_HEALTH_SILENCE_FACTOR = env.float("CHANNEL_HEALTH_SILENCE_FACTOR", default=3.0)
CHANNEL_HEALTH_MIN_SILENCE_HOURS = env.float("CHANNEL_HEALTH_MIN_SILENCE_HOURS", default=2.0)
CHANNEL_HEALTH_SIGNATURE_FAILURES = env.int("CHANNEL_HEALTH_SIGNATURE_FAILURES", default=5)
CHANNEL_HEALTH_OUTBOUND_FAILURE_SHARE = env.float("CHANNEL_HEALTH_OUTBOUND_FAILURE_SHARE", default=0.5)
CHANNEL_HEALTH_OUTBOUND_MIN = env.int("CHANNEL_HEALTH_OUTBOUND_MIN", default=3)

CELERY_BEAT_SCHEDULE: dict = {
    **CASES_BEAT_SCHEDULE,
    # Outbound webhook deliveries whose task was lost (a worker died) are sent again.
    "redeliver-webhooks": {
        "task": "connectors.redeliver_webhooks",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Pending inbound events (their own task lost, or the broker was down) in batches.
    "process-inbound-batch": {
        "task": "connectors.process_inbound_batch",
        "schedule": 5.0,
        "options": {"expires": 5},
    },
    # Queued replies whose send task was lost (the broker restarted empty) are queued again.
    "requeue-stalled-sends": {
        "task": "connectors.requeue_stalled_sends",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Monitoring-alert deliveries whose task was lost.
    "process-pending-alerts": {
        "task": "connectors.process_pending_alerts",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "poll-imap": {"task": "connectors.poll_imap", "schedule": 60.0, "options": {"expires": 55}},
}

# --- Auth (django-allauth) -------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="optional")
ACCOUNT_UNIQUE_EMAIL = True
# Agents are invited by admins; nobody signs up on their own.
ACCOUNT_ADAPTER = "cases.auth.InviteOnlyAccountAdapter"
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
# Roles (admin, supervisor, agent: cases.permissions.role_of) that must use a TOTP
# authenticator: a signed-in user of such a role without one is sent to set it up before
# any desk or API page (config/middleware.py). Signing in through SSO counts: the
# identity provider enforces its own second factor.
MFA_REQUIRED_ROLES = [
    role.strip().lower() for role in env.list("MFA_REQUIRED_ROLES", default=[]) if role.strip()
]
_unknown_roles = set(MFA_REQUIRED_ROLES) - {"admin", "supervisor", "agent"}
if _unknown_roles:
    raise ImproperlyConfigured(f"MFA_REQUIRED_ROLES: unknown role(s) {sorted(_unknown_roles)}.")
MFA_TOTP_ISSUER = env.str("MFA_TOTP_ISSUER", default="Caseline")

# SSO: an OpenID Connect provider (Keycloak, Entra ID, Okta, Google Workspace...) from
# OIDC_PROVIDER_ID, OIDC_SERVER_URL (the issuer; /.well-known/openid-configuration is
# read from it), OIDC_CLIENT_ID and OIDC_CLIENT_SECRET. The login page offers it;
# callbacks arrive at /accounts/oidc/<OIDC_PROVIDER_ID>/login/callback/. Caseline is
# invite-only, so SSO signs in existing users (matched on the verified e-mail address
# the provider asserts) and never creates accounts.
OIDC_PROVIDER_ID = env.str("OIDC_PROVIDER_ID", default="")
OIDC_SERVER_URL = env.str("OIDC_SERVER_URL", default="")
OIDC_CLIENT_ID = env.str("OIDC_CLIENT_ID", default="")
OIDC_CLIENT_SECRET = env.str("OIDC_CLIENT_SECRET", default="")
SOCIALACCOUNT_PROVIDERS: dict = {}
if OIDC_PROVIDER_ID or OIDC_SERVER_URL or OIDC_CLIENT_ID:
    _missing = [
        name
        for name, value in (
            ("OIDC_PROVIDER_ID", OIDC_PROVIDER_ID),
            ("OIDC_SERVER_URL", OIDC_SERVER_URL),
            ("OIDC_CLIENT_ID", OIDC_CLIENT_ID),
            ("OIDC_CLIENT_SECRET", OIDC_CLIENT_SECRET),
        )
        if not value
    ]
    if _missing:
        raise ImproperlyConfigured(f"SSO is half configured: set {', '.join(_missing)} too.")
    SOCIALACCOUNT_PROVIDERS["openid_connect"] = {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [
            {
                "provider_id": OIDC_PROVIDER_ID,
                "name": env.str("OIDC_PROVIDER_NAME", default="Single sign-on"),
                "client_id": OIDC_CLIENT_ID,
                "secret": OIDC_CLIENT_SECRET,
                "settings": {"server_url": OIDC_SERVER_URL},
            }
        ],
    }
SOCIALACCOUNT_ONLY = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
# Provider tokens are not needed after sign-in; do not keep them.
SOCIALACCOUNT_STORE_TOKENS = False
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "desk:queue"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"

# --- Configuration audit trail (django-auditlog; see config/audit.py) -----------------------
# Who changed which setting, when, before and after. Secrets never reach the database;
# their digests and salts stay out of the trail too.
_AUDIT_STAMPS = ["created_at", "updated_at"]  # saved every time: not a change of their own
AUDITLOG_INCLUDE_TRACKING_MODELS = (
    *(
        {"model": model, "exclude_fields": _AUDIT_STAMPS}
        for model in (
            "cases.Department",
            "cases.Membership",
            "cases.EscalationPath",
            "cases.BusinessCalendar",
            "cases.ServicePromise",
            "cases.TriageSettings",
            "cases.CannedReply",
            "connectors.Channel",
        )
    ),
    # The failure counter moves with every delivery: noise, not configuration.
    {
        "model": "connectors.WebhookSubscription",
        "exclude_fields": ["signing_salt", "failure_count", *_AUDIT_STAMPS],
    },
    {"model": "connectors.ApiToken", "exclude_fields": ["key_hash", "last_used_at", *_AUDIT_STAMPS]},
    # Roles: memberships above, plus the staff and superuser flags and whether the account is live.
    {"model": "auth.User", "include_fields": ["is_staff", "is_superuser", "is_active"]},
)
AUDITLOG_STORE_JSON_CHANGES = True
AUDITLOG_DISABLE_REMOTE_ADDR = False

# --- Internationalisation ----------------------------------------------------------
LANGUAGE_CODE = "en"
# The languages the desk is translated into (locale/<code>/LC_MESSAGES/django.po); the
# chooser offers these. Adding one: add it here, then makemessages -l <code> and compilemessages.
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
# Region used to read phone numbers written without a country code.
DEFAULT_PHONE_REGION = env.str("DEFAULT_PHONE_REGION", default="US")

# --- Static and media ----------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
# Inbound request bodies above this size are refused before they are parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)

# --- E-mail -------------------------------------------------------------------------
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="support@caseline.localhost")
ANYMAIL = {
    # The shared secret ESPs send as basic auth on inbound webhooks ("user:password").
    "WEBHOOK_SECRET": env.str("ANYMAIL_WEBHOOK_SECRET", default=""),
}

# --- REST framework ---------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "connectors.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "cases.api.exceptions.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "api_token": env.str("API_TOKEN_RATE", default="1200/min"),
        "api_token_write": env.str("API_TOKEN_WRITE_RATE", default="300/min"),
        "api_token_create": "20/hour",
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Caseline API",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    **API_SCHEMA_SETTINGS,
}

# --- Security ----------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
# The header only allows submission to the browsers' preload list; nothing is submitted.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'", "ws:", "wss:"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        # No plugins, and no <base> that could re-point the pages' relative script URLs.
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
    }
}

# --- Caseline ------------------------------------------------------------------------
# Raw inbound events (the webhook bodies) are kept this many days; 0 keeps them for ever.
# Beat's privacy retention sweep (cases.privacy) deletes processed and ignored events past
# it; pending and failed ones are kept until they are processed. Production: set e.g. 90.
INBOUND_EVENT_RETENTION_DAYS = env.int("INBOUND_EVENT_RETENTION_DAYS", default=0)
# Task modules outside the apps' tasks.py: the privacy tasks live beside their services.
CELERY_IMPORTS = ("cases.privacy",)
# Replays of a signed X or Meta body: while its first delivery is stored, a replay is
# acknowledged and ignored (same delivery id). Once raw events are purged that no longer
# holds, so a body whose platform timestamps are all older than this window is refused.
# It defaults to the retention period: every replay is then either matched or refused.
# WhatsApp retries a failed delivery for up to 7 days: keep the window above that.
WEBHOOK_REPLAY_WINDOW_HOURS = env.int(
    "WEBHOOK_REPLAY_WINDOW_HOURS", default=INBOUND_EVENT_RETENTION_DAYS * 24
)
if INBOUND_EVENT_RETENTION_DAYS and not 0 < WEBHOOK_REPLAY_WINDOW_HOURS <= INBOUND_EVENT_RETENTION_DAYS * 24:
    raise ImproperlyConfigured(
        "WEBHOOK_REPLAY_WINDOW_HOURS must be set and no longer than INBOUND_EVENT_RETENTION_DAYS: "
        "a replay older than the kept events could not be recognised."
    )

# Integrator webhooks go to public addresses only (no loopback, private or link-local
# targets, checked again at every attempt). Set true when receivers live on your own network.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=False)

# A customer message on a resolved or closed case opens a new case after this long.
CASE_REOPEN_WINDOW_DAYS = env.int("CASE_REOPEN_WINDOW_DAYS", default=7)

# Satisfaction surveys (cases/csat): after a case is resolved its customer is asked, once, on
# the channel they last wrote on, through a signed link to PUBLIC_URL/s/<token>/. Off unless
# set, so no customer is sent a link before PUBLIC_URL names the public address. The question
# goes this many minutes after resolving (a case reopened meanwhile is not asked), and its link
# works for this many days.
CASELINE_CSAT_ENABLED = env.bool("CASELINE_CSAT_ENABLED", default=False)
CASELINE_CSAT_DELAY_MINUTES = env.int("CASELINE_CSAT_DELAY_MINUTES", default=0)
CASELINE_CSAT_LINK_DAYS = env.int("CASELINE_CSAT_LINK_DAYS", default=14)

# The topics page (cases/topics): beat's topics job counts the phrases of new customer
# messages per week; cells (and messages) older than this many weeks are left out. With the
# sentence model on (the ``topics`` extra: pip install 'caseline[topics]'), messages alike in
# meaning are also grouped into themes; it costs CPU and memory (see docs/benchmarks.md).
CASELINE_TOPICS_KEEP_WEEKS = env.int("CASELINE_TOPICS_KEEP_WEEKS", default=52)
CASELINE_TOPICS_SENTENCE_MODEL = env.bool("CASELINE_TOPICS_SENTENCE_MODEL", default=False)
if CASELINE_TOPICS_KEEP_WEEKS < 2:
    raise ImproperlyConfigured("CASELINE_TOPICS_KEEP_WEEKS must be at least 2 (this week and the last).")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
