"""Settings for every environment, read from the environment (see the README's table).

One settings module (STYLE.md), so it is long: every setting is a variable with a default."""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str, env_url
from config.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("ATELIER_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY", "")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    # Development: one random key, kept so that sessions survive a restart.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()


def _networks(name: str, default: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [
            ipaddress.ip_network(item, strict=False)
            for item in env_list(name, default.split(","))
            if item
        ]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "operations.apps.OperationsAdminConfig",  # django.contrib.admin with the dashboard
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "billing",
    "generation",
    "operations",
    "web",
    "allauth",
    "allauth.account",
]

MIDDLEWARE = [
    "config.request_middleware.RequestMiddleware",  # X-Request-ID, metrics, one log line
    "config.prefer.prefer_wait_middleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the cookie the header's switcher sets, else Accept-Language, else English.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "config.unavailable.ServiceUnavailableMiddleware",
]

# The web process (config/asgi.py, config/front_door.py): threads running synchronous views,
# requests that may wait for one (more are answered 503 at once, and so is one that waited
# too long), and requests that may wait for their images on the event loop (OpenAI's API).
WEB_THREADS = env_int("WEB_THREADS", 4, minimum=1)
WEB_MAX_QUEUED = env_int("WEB_MAX_QUEUED", 64, minimum=0)
WEB_MAX_WAITING = env_int("WEB_MAX_WAITING", 1000, minimum=1)
WEB_MAX_QUEUE_SECONDS = env_int("WEB_MAX_QUEUE_SECONDS", 10, minimum=1)  # then 503, not run
# API keys are remembered per process for this long: a revoked key stops working on every web
# process within this many seconds (accounts/authentication.py).
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 2, minimum=0)

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "web.context.workspace_nav",
            ],
        },
    },
]

DATABASE_URL = env_url(
    "DATABASE_URL", "postgresql://localhost:5432/atelier", schemes=("postgres", "postgresql")
)
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
    )
}
# Web processes take connections from a bounded pool (platform/gunicorn.conf.py sets the size):
# a request borrows one and gives it back when it ends, so a process never holds more than
# DB_POOL_MAX_SIZE, and a request that cannot get one within DB_POOL_TIMEOUT seconds is
# answered 503 `overloaded` (config/overload.py) instead of PostgreSQL refusing a new client
# with a 500. Celery workers keep one persistent connection each (no pool).
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 0, minimum=0)
if DB_POOL_MAX_SIZE:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django's pool requires it: close = give back
    # No health check on each borrow: it costs a round trip per request, and the pool
    # already drops a connection that broke while in use.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(env_int("DB_POOL_MIN_SIZE", 2, minimum=0), DB_POOL_MAX_SIZE),
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": env_int("DB_POOL_TIMEOUT", 2, minimum=1),
    }
# A statement running longer than this (seconds; 0: no limit) is cancelled and its request
# answered 503 `overloaded`: under overload a web request must end, not hang (web: 15 s).
DB_STATEMENT_TIMEOUT = env_int("DB_STATEMENT_TIMEOUT", 0, minimum=0)
if DB_STATEMENT_TIMEOUT:
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
        f"-c statement_timeout={DB_STATEMENT_TIMEOUT * 1000}"
    )
# Parameters travel apart from the SQL (server-side binding) and a statement a connection
# runs DB_PREPARE_THRESHOLD times is prepared once (psycopg's automatic prepared statements):
# PostgreSQL then neither parses nor plans it again, and psycopg does not quote values into
# the text. Measured on a submission and GET /api/v1/me (README, "The web server"). Behind
# PgBouncer in transaction mode, prepared statements need PgBouncer 1.21 or later with
# max_prepared_statements set; or set DB_PREPARE_THRESHOLD=0 (never prepare).
DB_SERVER_SIDE_BINDING = env_bool("DB_SERVER_SIDE_BINDING", True)
DB_PREPARE_THRESHOLD = env_int("DB_PREPARE_THRESHOLD", 5, minimum=0)
if DB_SERVER_SIDE_BINDING:
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = DB_PREPARE_THRESHOLD or None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One Redis serves the Celery broker, the cache and the rate-limit counters.
REDIS_URL = env_url("REDIS_URL", "redis://127.0.0.1:6379/0", schemes=("redis", "rediss", "unix"))
CACHES = {
    "default": {
        "BACKEND": "config.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "atelier",
        "OPTIONS": {
            "pool_class": "config.cache.SharedConnectionPool",
            # A Redis out of reach is a quick 503, not a hung request.
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
        },
    }
}
RATELIMIT_USE_CACHE = "default"
RATELIMIT_IP_META_KEY = env_str("RATELIMIT_IP_META_KEY", "REMOTE_ADDR") or None
AUTH_RATE = env_str("AUTH_RATE", "10/m")

AUTH_USER_MODEL = "accounts.User"
# Argon2id at OWASP's minimum parameters (config/hashers.py): memory-hard, and about 20x less
# CPU per sign-up than PBKDF2's 0.56 s here. PBKDF2 stays listed so that older hashes still
# log in; Django rewrites each one with Argon2id at its owner's next login.
PASSWORD_HASHERS = [
    "config.hashers.Argon2idHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The web pages' accounts (django-allauth): email is the login, and it must be verified.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
ACCOUNT_ADAPTER = "web.adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_REDIRECT_URL = "/"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/studio/"
# Development and tests print mail to the console; production names an SMTP backend.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Atelier <noreply@localhost>")

# English and French (README: adding a language). Names are each language's own, as the
# header's switcher shows them; the catalogues live in locale/ and `make` compiles them.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
FORMAT_MODULE_PATH = ["config.formats"]
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
# Media is never served from a public URL: the API streams each file after checking that
# the caller belongs to the owning workspace. MEDIA_STORAGE can name any Django storage,
# such as "storages.backends.s3.S3Storage" (configured by django-storages' AWS_* variables).
STORAGES = {
    "default": {"BACKEND": env_str("MEDIA_STORAGE", "django.core.files.storage.FileSystemStorage")},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Production hardening; each is a variable so that nothing exists only in production.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [
    r"^healthz$",
    r"^readyz$",
    r"^metrics$",
]  # the load balancer's probe speaks plain HTTP
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "accounts.authentication.WorkspaceSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "config.api_errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "config.openapi.AtelierAutoSchema",
}
# The OpenAPI schema at /api/schema/ and its docs at /api/docs/, with Swagger UI served from
# our own static files (drf-spectacular-sidecar), never from a CDN.
SPECTACULAR_SETTINGS = {
    "TITLE": "Atelier API",
    "DESCRIPTION": "Image generation: the native API under /api/v1/ and the OpenAI-compatible "
    "images API under /v1/. Every error has one shape, OpenAI's: "
    '`{"error": {"code", "message", "type", "param"}}`.',
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"WebhookEventEnum": "generation.models.WebhookEvent"},
}
# The OpenAI-compatible API: the model's public name (default: the folder's name or the hub
# id), how long a request waits for its images, how long an image URL it hands out works.
GENERATION_MODEL_NAME = env_str("GENERATION_MODEL_NAME", "")
OPENAI_WAIT_SECONDS = env_int("OPENAI_WAIT_SECONDS", 60, minimum=1)
OPENAI_IMAGE_URL_TTL = env_int("OPENAI_IMAGE_URL_TTL", 3600, minimum=60)
# `Prefer: wait` on the native submit endpoints: the longest a request may wait (seconds), and
# the URLconf whose async views serve such requests (config/prefer.py).
PREFER_WAIT_MAX_SECONDS = env_int("PREFER_WAIT_MAX_SECONDS", 60, minimum=1)
PREFER_WAIT_URLCONF = "generation.wait_urls"
# Server-Sent Events (GET /api/v1/generations/<id>/events and the studio's cards): a comment
# line this often keeps proxies from closing a quiet stream; a stream ends after STREAM_MAX.
EVENTS_KEEPALIVE_SECONDS = env_int("EVENTS_KEEPALIVE_SECONDS", 15, minimum=1)
EVENTS_STREAM_MAX_SECONDS = env_int("EVENTS_STREAM_MAX_SECONDS", 3600, minimum=1)

# Celery: the message carries only a job id; the database row is the truth.
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_TRANSPORT = "config.broker:Transport"  # kombu's, keeping its Redis client
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Take the priority lane's tickets first; dispatch from the database keeps it fair.
    "queue_order_strategy": "priority",
    # Longer than the longest job: an unacknowledged message is redelivered after this.
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60),
}
CELERY_TASK_DEFAULT_QUEUE = "maintenance"
# A ticket that cannot be sent fails fast (the job stays queued; the sweeper re-sends).
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Celery's Django fixup closes the database connection before and after every task unless
# this is set, so each task (a no-op ticket too) paid for a new PostgreSQL connection. It
# now recycles the connection only every this many tasks; config/celery.py closes stale or
# broken ones around each task the way Django does between requests (DB_CONN_MAX_AGE).
CELERY_DB_REUSE_MAX = 1000

# Generation
# The committed demo model (manage.py train_demo_model); a deployment names a real one.
GENERATION_MODEL = env_str("GENERATION_MODEL", str(BASE_DIR / "models" / "atelier-demo"))
GENERATION_DEVICE = env_str("GENERATION_DEVICE", "")  # empty: cuda, then mps, then cpu
MAX_PROMPT_LENGTH = 1000
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 10_000_000, minimum=1)
UPLOAD_MAX_PIXELS = env_int("UPLOAD_MAX_PIXELS", 4096 * 4096, minimum=1)
# The largest request body any URL accepts (the web front door refuses more with 413 before
# anything reads it): an upload and its form fields.
REQUEST_MAX_BYTES = env_int("REQUEST_MAX_BYTES", UPLOAD_MAX_BYTES + 1_000_000, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1_000_000
FILE_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1_000_000
# Worker: images per pipeline call, lanes this worker serves, and crash-safety timings.
GENERATION_BATCH_SIZE = env_int("GENERATION_BATCH_SIZE", 8, minimum=1)
GENERATION_COMPILE = env_bool("GENERATION_COMPILE", False)
WORKER_LANES = env_list("WORKER_LANES", ["priority", "standard", "free"])
LANE_WEIGHTS = {"priority": 8, "standard": 3, "free": 1}
# Fewer images per batch where the measured time per image would make one batch hold its
# worker longer than this (0: no bound): about the longest a paid job waits behind a batch.
GENERATION_BATCH_SECONDS = env_int("GENERATION_BATCH_SECONDS", 10, minimum=0)
# Pipelining (generation/worker.py): while the GPU renders a batch, the next is claimed and
# the last one encoded, stored and settled on threads; at most WORKER_SETTLE_DEPTH rendered
# batches wait to be settled, encoded by WORKER_ENCODE_THREADS threads. false: one after
# the other on one thread.
WORKER_PIPELINE = env_bool("WORKER_PIPELINE", True)
WORKER_SETTLE_DEPTH = env_int("WORKER_SETTLE_DEPTH", 2, minimum=1)
WORKER_ENCODE_THREADS = env_int("WORKER_ENCODE_THREADS", 2, minimum=1)
# PNG writer (generation/images.py): fpng (fast) or pillow (smaller files, at
# GENERATION_PNG_COMPRESS_LEVEL 0-9); the README's encoder table has the figures.
GENERATION_PNG_ENCODER = env_str("GENERATION_PNG_ENCODER", "fpng")
if GENERATION_PNG_ENCODER not in ("fpng", "pillow"):
    raise ImproperlyConfigured("GENERATION_PNG_ENCODER must be fpng or pillow.")
GENERATION_PNG_COMPRESS_LEVEL = env_int("GENERATION_PNG_COMPRESS_LEVEL", 6, minimum=0)
if GENERATION_PNG_COMPRESS_LEVEL > 9:
    raise ImproperlyConfigured("GENERATION_PNG_COMPRESS_LEVEL must be between 0 and 9.")
JOB_HEARTBEAT_INTERVAL = env_int("JOB_HEARTBEAT_INTERVAL", 10, minimum=1)
JOB_HEARTBEAT_TIMEOUT = env_int("JOB_HEARTBEAT_TIMEOUT", 60, minimum=5)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1)
JOB_DEADLINE = env_int("JOB_DEADLINE", 3600, minimum=60)
# A batch may run for BASE seconds plus PER_MEGAPIXEL_STEP per megapixel x step x image.
JOB_TIME_LIMIT_BASE = env_int("JOB_TIME_LIMIT_BASE", 120, minimum=1)
JOB_TIME_LIMIT_PER_MEGAPIXEL_STEP = env_int("JOB_TIME_LIMIT_PER_MEGAPIXEL_STEP", 30, minimum=1)
SWEEP_INTERVAL = env_int("SWEEP_INTERVAL", 15, minimum=1)
# An edit's uploaded photo goes with its last image; one that made none, after this long.
SOURCE_PHOTO_RETENTION_DAYS = env_int("SOURCE_PHOTO_RETENTION_DAYS", 7, minimum=1)
# A lane whose broker queue is empty while jobs have waited this long gets tickets again.
TICKET_RESEND_AFTER = env_int("TICKET_RESEND_AFTER", 60, minimum=1)
TICKET_RESEND_BATCH = env_int("TICKET_RESEND_BATCH", 8, minimum=1)
# Admission sends a ticket (a worker's doorbell) only while fewer than this many wait in the
# lane's broker queue: each one wakes a worker that drains the lane (generation/tickets.py).
LANE_TICKETS_MAX = env_int("LANE_TICKETS_MAX", 16, minimum=1)
# Overload control: how throughput is measured and how the waiting room paces retries.
THROUGHPUT_SMOOTHING = 0.2  # weight of the newest batch in the seconds-per-image average
DEFAULT_SECONDS_PER_IMAGE = float(env_int("DEFAULT_MS_PER_IMAGE", 2000, minimum=1)) / 1000
WORKER_ALIVE_INTERVAL = 10
WORKER_ALIVE_TIMEOUT = env_int("WORKER_ALIVE_TIMEOUT", 30, minimum=5)
WAITING_ROOM_GRACE = env_int("WAITING_ROOM_GRACE", 60, minimum=1)
WAITING_ROOM_MAX_SLOTS = env_int("WAITING_ROOM_MAX_SLOTS", 100, minimum=1)  # per workspace
# A slot further ahead than this (seconds) is not booked: the client is told when to try
# again, and no place is kept that would hold the lane if it gave up (generation/overload.py).
WAITING_ROOM_HORIZON = env_int("WAITING_ROOM_HORIZON", 300, minimum=1)
FREE_TIER_PAUSED_RETRY_AFTER = env_int("FREE_TIER_PAUSED_RETRY_AFTER", 300, minimum=1)
# GET /api/v1/status is public: computed at most once per this many seconds for all callers,
# and each address may ask STATUS_RATE times.
STATUS_CACHE_SECONDS = env_int("STATUS_CACHE_SECONDS", 2, minimum=0)
STATUS_RATE = env_str("STATUS_RATE", "120/m")
# The module whose run_batch renders images; bench/overload.py and bench/worker_host.py
# alone swap in a simulation.
GENERATION_PIPELINE_MODULE = env_str("GENERATION_PIPELINE_MODULE", "generation.pipeline")

# Provenance (generation/provenance.py). Every image carries a C2PA manifest signed with this
# certificate chain (PEM, the signing certificate first) and private key (PEM, PKCS#8); left
# empty, a local test chain is made under VAR_DIR/c2pa and used (not trusted by anyone else).
C2PA_SIGNING_CERT = env_str("C2PA_SIGNING_CERT", "")
C2PA_SIGNING_KEY = env_str("C2PA_SIGNING_KEY", "")
C2PA_SIGNING_ALG = env_str("C2PA_SIGNING_ALG", "es256").lower()
if C2PA_SIGNING_ALG not in {"es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"}:
    raise ImproperlyConfigured(f"C2PA_SIGNING_ALG is not a C2PA algorithm: {C2PA_SIGNING_ALG!r}")
if bool(C2PA_SIGNING_CERT) != bool(C2PA_SIGNING_KEY):
    raise ImproperlyConfigured(
        "C2PA_SIGNING_CERT and C2PA_SIGNING_KEY are set together or not at all"
    )
# Root certificates (PEM) of the chain above: a manifest that validates against them is this
# platform's. Empty: the test chain's root, or the last certificate of C2PA_SIGNING_CERT.
C2PA_TRUST_ANCHORS = env_str("C2PA_TRUST_ANCHORS", "")
# An RFC 3161 time-stamping authority for the signatures (empty: none; needs the network).
C2PA_TIMESTAMP_URL = env_str("C2PA_TIMESTAMP_URL", "")
C2PA_TEST_CHAIN_DIR = VAR_DIR / "c2pa"
PROVENANCE_PLATFORM = env_str("PROVENANCE_PLATFORM", "Atelier")
# POST /api/v1/provenance/verify is public: each address may verify this many images.
VERIFY_RATE = env_str("VERIFY_RATE", "30/m")
# Output safety check (generation/safety.py): a diffusers StableDiffusionSafetyChecker folder
# (its config, weights and CLIP preprocessor), or empty for no check.
SAFETY_CHECKER_MODEL = env_str("SAFETY_CHECKER_MODEL", "")
# Added to every checker score at the strict moderation level (0 at standard): higher flags more.
SAFETY_STRICT_ADJUSTMENT = 0.03
CELERY_BEAT_SCHEDULE = {
    "sweep-jobs": {
        "task": "generation.sweep_jobs",
        "schedule": SWEEP_INTERVAL,
        "options": {"queue": "maintenance", "expires": SWEEP_INTERVAL},
    },
    "expire-images": {
        "task": "generation.expire_images",
        "schedule": 3600,
        "options": {"queue": "maintenance", "expires": 3600},
    },
}

# Webhooks (generation/webhooks.py): deliveries run on the `webhooks` Celery queue, never on a
# GPU worker. Each attempt times out after WEBHOOK_TIMEOUT seconds; network errors, 429 and 5xx
# are retried with exponential backoff and jitter (from WEBHOOK_RETRY_BASE_MS, at most
# WEBHOOK_RETRY_MAX_DELAY apart) for WEBHOOK_RETRY_WINDOW seconds. An endpoint failing for
# WEBHOOK_DISABLE_AFTER seconds is disabled and its owners mailed. Deliveries go only to public
# addresses over https: WEBHOOK_ALLOW_HTTP and WEBHOOK_ALLOWED_NETWORKS (CIDRs, such as
# 127.0.0.0/8) open plain http and private networks, for development and tests only.
WEBHOOK_TIMEOUT = env_int("WEBHOOK_TIMEOUT", 5, minimum=1)
WEBHOOK_RETRY_BASE_SECONDS = env_int("WEBHOOK_RETRY_BASE_MS", 5000, minimum=1) / 1000
WEBHOOK_RETRY_MAX_DELAY = env_int("WEBHOOK_RETRY_MAX_DELAY", 1800, minimum=1)
WEBHOOK_RETRY_WINDOW = env_int("WEBHOOK_RETRY_WINDOW", 6 * 3600, minimum=0)
WEBHOOK_DISABLE_AFTER = env_int("WEBHOOK_DISABLE_AFTER", 3 * 24 * 3600, minimum=0)
# Finished deliveries and their attempts are kept this long (the hourly expire task).
WEBHOOK_DELIVERY_RETENTION_DAYS = env_int("WEBHOOK_DELIVERY_RETENTION_DAYS", 30, minimum=1)
WEBHOOK_ALLOW_HTTP = env_bool("WEBHOOK_ALLOW_HTTP", False)
WEBHOOK_ALLOWED_NETWORKS = env_list("WEBHOOK_ALLOWED_NETWORKS", [])
WEBHOOK_MAX_BODY_BYTES = 256 * 1024  # a job's JSON is a few kB
WEBHOOK_RESPONSE_MAX_BYTES = 4096  # of a receiver's answer, kept for the attempt's record
# The public address of this platform: webhooks' signed image URLs start with it.
PUBLIC_URL = env_url("PUBLIC_URL", "http://localhost:8000", schemes=("https", "http"))
CELERY_TASK_ROUTES = {"generation.deliver_webhook": {"queue": "webhooks"}}

# Billing with Stripe. Without STRIPE_SECRET_KEY the billing endpoints answer that billing
# is not set up and everything else works. STRIPE_API_BASE points tests at localstripe.
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY", "")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET", "")
STRIPE_API_BASE = env_url("STRIPE_API_BASE", "https://api.stripe.com", schemes=("https", "http"))
BILLING_CURRENCY = env_str("BILLING_CURRENCY", "usd")
BILLING_GRACE_PERIOD_HOURS = env_int("BILLING_GRACE_PERIOD_HOURS", 72, minimum=0)
BILLING_SUCCESS_URL = env_url(
    "BILLING_SUCCESS_URL",
    "http://localhost:8000/billing?checkout=success&session_id={CHECKOUT_SESSION_ID}",
    schemes=("https", "http"),
)
BILLING_CANCEL_URL = env_url(
    "BILLING_CANCEL_URL",
    "http://localhost:8000/billing?checkout=cancelled",
    schemes=("https", "http"),
)
BILLING_PORTAL_RETURN_URL = env_url(
    "BILLING_PORTAL_RETURN_URL", "http://localhost:8000/billing", schemes=("https", "http")
)

# Logs: one line per record, readable text (make run) or one JSON object per line
# (LOG_FORMAT=json), each with the request id of its request or of the jobs it created.
LOG_FORMAT = env_str("LOG_FORMAT", "text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be text or json")
LOGGING = logging_config(log_format=LOG_FORMAT, level=env_str("LOG_LEVEL", "INFO"))
# Celery workers log through the same configuration (else Celery installs its own format).
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Prometheus metrics (config/metrics.py). GET /metrics answers a caller with the bearer
# token METRICS_TOKEN or from an address in METRICS_ALLOW_IPS (default: loopback only).
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_ALLOW_NETWORKS = _networks("METRICS_ALLOW_IPS", "127.0.0.1,::1")
# A Celery worker serves its own metrics on this port (0: none), on WORKER_METRICS_ADDR.
WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", 0, minimum=0)
WORKER_METRICS_ADDR = env_str("WORKER_METRICS_ADDR", "127.0.0.1")
# /readyz checks the database and Redis at most once per this many seconds per process.
READYZ_CACHE_SECONDS = env_int("READYZ_CACHE_SECONDS", 1, minimum=0)
