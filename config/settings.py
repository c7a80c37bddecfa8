"""Settings for every environment, chosen by environment variables (see README's table).

APP_ENV=production refuses to start without SECRET_KEY, FIELD_ENCRYPTION_KEYS, BLIND_INDEX_KEY and
ALLOWED_HOSTS, with any of these keys a development default or too short, with DEBUG on, and never allows
loopback outbound HTTP. Development and test run on embedded defaults:
SQLite, local-memory cache and a filesystem Celery broker, so a bare machine with only Python works.
"""

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import environ
from django.core.exceptions import ImproperlyConfigured

import core.process  # noqa: F401 - records the process start time (uptime), once, at start-up
from accounts.oidc import authorized_parties, cors_allowed_origins, cors_urls_regex, jwks_url, oidc_problems
from core.health import authentication_problems, encryption_problems
from core.net import parse_networks

BASE_DIR = Path(__file__).resolve().parent.parent
LOCAL_DIR = BASE_DIR / ".local"  # embedded-default state (SQLite file, broker queue); git-ignored

env = environ.Env()

APP_ENV = env.str("APP_ENV", default="development")
if APP_ENV not in {"development", "test", "production"}:
    raise ImproperlyConfigured(f"APP_ENV must be development, test or production, not {APP_ENV!r}")
IS_PRODUCTION = APP_ENV == "production"
PLATFORM_VERSION = "2.0.0"
PORT = env.int("PORT", default=8000)

# Development-only values. They are public, so production refuses to start with any of them (compared
# exactly in core.health, see _require_production_settings below).
DEV_SECRET_KEY = "dev-insecure-secret-key-never-use-in-production-0123456789"
DEV_FIELD_KEY = "ZGV2LWluc2VjdXJlLWZpZWxkLWtleS0wMTIzNDU2Nzg="  # urlsafe b64 of 32 bytes
DEV_BLIND_INDEX_KEY = "dev-insecure-blind-index-key"


def _require_production_settings() -> None:
    missing = [
        name
        for name in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "BLIND_INDEX_KEY", "ALLOWED_HOSTS")
        if not env.str(name, default="").strip()
    ]
    if missing:
        raise ImproperlyConfigured("Production refuses to start without: " + ", ".join(missing) + " (see README).")
    if env.bool("OUTBOUND_ALLOW_LOOPBACK", default=False):
        raise ImproperlyConfigured("OUTBOUND_ALLOW_LOOPBACK is for tests and local demos only.")
    if env.bool("DEBUG", default=False):
        raise ImproperlyConfigured("Production refuses to start with DEBUG on (it shows settings and code).")
    secret_key = env.str("SECRET_KEY")
    # Problems name the setting and the rule, never the value (start-up errors reach logs).
    weak = authentication_problems(
        secret_key=secret_key,
        jwt_signing_key=env.str("JWT_SIGNING_KEY", default=secret_key),
        dev_secret_key=DEV_SECRET_KEY,
    ) | encryption_problems(
        field_keys=env.list("FIELD_ENCRYPTION_KEYS"),
        blind_index_key=env.str("BLIND_INDEX_KEY"),
        dev_field_key=DEV_FIELD_KEY,
        dev_blind_index_key=DEV_BLIND_INDEX_KEY,
    )
    if weak:
        raise ImproperlyConfigured(
            "Production refuses to start: "
            + "; ".join(f"{name} {problem}" for name, problem in weak.items())
            + " (generate new keys: see README)."
        )


if IS_PRODUCTION:
    _require_production_settings()

SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=APP_ENV == "development")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "accounts.apps.PlatformAdminConfig",  # django.contrib.admin with accounts.admin_site.PlatformAdminSite
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "pgtrigger",
    "health_check",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "corsheaders",
    "core",
    "accounts",
    "audit",
    "webhooks",
    "messaging",
    "integration",
    "patients",
    "leads",
    "sessions_analytics",
    "sync",
]
if APP_ENV == "test":
    INSTALLED_APPS += ["tests.encryption_app"]  # models exercising core.encryption

MIDDLEWARE = [
    "core.middleware.RequestIdMiddleware",
    "core.net.ForwardedProtoMiddleware",  # before SecurityMiddleware: X-Forwarded-Proto only from our proxies
    "django.middleware.security.SecurityMiddleware",
    # Before the access log and the rate limiter: a CORS preflight (OPTIONS with Access-Control-Request-
    # Method) is answered here and never counted or logged; every other answer, errors included, passes
    # back through it to get its CORS headers (docs/identity.md, "CORS").
    "corsheaders.middleware.CorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "audit.middleware.AccessLogMiddleware",
    "core.middleware.ApiErrorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): signed in with a TOTP code
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # turns an admin sign-in refused for lockout into the lockout page
]

ROOT_URLCONF = "config.urls"
# API paths are exact as the specs write them; no redirect to a slash-appended variant.
APPEND_SLASH = False
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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

# --- Database ---------------------------------------------------------------------------------
LOCAL_DIR.mkdir(exist_ok=True)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{LOCAL_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one SQLite file in the embedded default: wait for locks, take the
    # write lock up front (no upgrade deadlocks) and let readers run beside the writer.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Our queries are short OLTP reads: PostgreSQL's JIT compiles plans whose estimated cost passes
        # jit_above_cost (a 2,000-client list would) and spends more compiling than it saves.
        DATABASES["default"].setdefault("OPTIONS", {})
        DATABASES["default"]["OPTIONS"].setdefault("options", "-c jit=off")
        # A database host that hangs instead of refusing must cost a request seconds (then the API's 503),
        # not minutes (unanswered SYNs) or forever (accepted, never answered): gunicorn would kill the
        # worker first (tests/faults/test_database_restart.py).
        DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=5))
        # Django's backend, but the health check of a reused connection polls its socket and sends SELECT 1
        # only when something is pending: no round trip per request (core/postgresql/base.py, issue 15).
        DATABASES["default"]["ENGINE"] = "core.postgresql"
# Roles (core/db_roles.py, docs/operations.md "Database roles"): DATABASE_URL is the app role, which owns
# nothing; migrations run once per deploy with the owner's URL (compose's `migrate` service), and grant
# DATABASE_APP_ROLE / DATABASE_PURGE_ROLE afterwards. The retention purge alone connects as the purge
# role (AUDIT_PURGE_DATABASE_URL), the only one that may DELETE audit rows (and only those over 6 years).
DATABASE_APP_ROLE = env.str("DATABASE_APP_ROLE", default="")
DATABASE_PURGE_ROLE = env.str("DATABASE_PURGE_ROLE", default="")
AUDIT_PURGE_DATABASE_ALIAS = "default"
if env.str("AUDIT_PURGE_DATABASE_URL", default=""):
    AUDIT_PURGE_DATABASE_ALIAS = "audit_purge"
    DATABASES[AUDIT_PURGE_DATABASE_ALIAS] = {
        **env.db("AUDIT_PURGE_DATABASE_URL"),
        "CONN_MAX_AGE": 0,  # a nightly batch: no connection kept open as the purge role
        "TEST": {"MIRROR": "default"},
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# --- Cache (rate-limit counters live here: Redis makes them hold across processes and hosts) ----
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    # core.cache: Django's backend with one redis-py client per pool (Django builds one per call).
    CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "platform"}}
# core.body_cache: the longest a cached response body is kept (its key and validity decide whether it is
# served at all); 0 turns the cache off.
BODY_CACHE_SECONDS = env.int("BODY_CACHE_SECONDS", default=3600)

# --- Auth -------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Staff sign-in (accounts/staff_auth.py, docs/security.md "Staff access") ---------------------
# django-axes locks out the *admin* sign-in after ADMIN_LOGIN_FAILURE_LIMIT failures per username and,
# separately, per client IP (core.net's trusted-proxy rule) within the cool-off. API credentials
# (POST /api/v1/auth/token) are throttled by core.ratelimit instead and never locked: a locked
# integration account would take a clinic offline.
AUTHENTICATION_BACKENDS = [
    "accounts.staff_auth.AdminLoginLockoutBackend",  # first: refuses a locked-out admin sign-in
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "accounts.staff_auth.AdminOnlyAxesHandler"
AXES_ONLY_ADMIN_SITE = True
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("ADMIN_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one reaching the limit locks
AXES_CLIENT_IP_CALLABLE = "accounts.staff_auth.axes_client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.staff_auth.lockout_response"
AXES_RESET_ON_SUCCESS = False  # a success would also wipe the IP's count (other usernames guessed from it)
AXES_ENABLE_ADMIN = False  # accounts.admin registers a read-only, audited view of the attempts instead
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "otp_token", "csrfmiddlewaretoken"]
# Staff TOTP two-factor (django-otp): required to use the admin when on; staff enrol in the admin
# ("Two-factor device") or through `manage.py staff_totp_enrol USERNAME`.
ADMIN_REQUIRE_2FA = env.bool("ADMIN_REQUIRE_2FA", default=IS_PRODUCTION)
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # never show a device's key or QR code after enrolment
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Healthcare platform admin")

if APP_ENV == "test":
    # Speed only: the default PBKDF2 hasher costs ~0.3 s per login attempt.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

ACCESS_TOKEN_LIFETIME_SECONDS = 3600
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=ACCESS_TOKEN_LIFETIME_SECONDS),
    "ALGORITHM": "HS256",
    "SIGNING_KEY": env.str("JWT_SIGNING_KEY", default=SECRET_KEY),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "UPDATE_LAST_LOGIN": False,
}

# External OIDC JWTs (Clerk session tokens), verified against the provider's JWKS (docs/identity.md).
OIDC_ISSUER = env.str("OIDC_ISSUER", default="").strip()
# Defaults to the issuer's /.well-known/jwks.json, where Clerk serves it.
OIDC_JWKS_URL = jwks_url(env.str("OIDC_JWKS_URL", default=""), OIDC_ISSUER)
# Checked only when set: Clerk session tokens carry no `aud` (custom JWT templates may).
OIDC_AUDIENCE = env.str("OIDC_AUDIENCE", default="").strip()
# Origins allowed in `azp` (Clerk: the Origin of the page that got the token); when set, a token without
# `azp` or with another one is refused.
OIDC_AUTHORIZED_PARTIES = authorized_parties(env.list("OIDC_AUTHORIZED_PARTIES", default=[]))
# Clock skew allowed on exp / nbf / iat (Clerk session tokens live 60 s).
OIDC_LEEWAY_SECONDS = env.int("OIDC_LEEWAY_SECONDS", default=5)
if not 0 <= OIDC_LEEWAY_SECONDS <= 60:
    raise ImproperlyConfigured("OIDC_LEEWAY_SECONDS must be between 0 and 60.")
_oidc_problems = oidc_problems(jwks=OIDC_JWKS_URL, issuer=OIDC_ISSUER, production=IS_PRODUCTION)
if _oidc_problems:
    raise ImproperlyConfigured("; ".join(_oidc_problems) + " (see docs/identity.md).")

# CORS (django-cors-headers) for the browser dashboards: only these origins (never a wildcard), only on the
# API paths they call (Routiq, the token endpoint, the therapist dashboard), bearer tokens not cookies.
CORS_ALLOWED_ORIGINS = cors_allowed_origins(env.list("CORS_ALLOWED_ORIGINS", default=[]))
CORS_ALLOW_ALL_ORIGINS = False
CORS_ALLOW_CREDENTIALS = False
CORS_URLS_REGEX = cors_urls_regex()
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "x-organization-id", "x-request-id")
CORS_EXPOSE_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
    "X-Request-ID",
)
CORS_PREFLIGHT_MAX_AGE = 3600
# Clerk organization roles -> ours (core.scoping.Role), e.g. CLERK_ROLE_MAP="org:billing=viewer,org:admin=admin".
# Defaults: org:admin -> admin, org:member -> staff; an unmapped Clerk role grants nothing.
CLERK_ROLE_MAP = env.dict("CLERK_ROLE_MAP", default={})

# On PostgreSQL the hottest statements (the access row's INSERT, a new lead's one-statement INSERT) are prepared
# statements on a kept cursor (core.kept_cursor: parsed and planned once per connection, about half of such an
# INSERT's server CPU; docs/decisions.md issue 15). Set it off behind a pooler that does not keep protocol-level
# prepared statements across transactions (PgBouncer's transaction mode before 1.21, or without
# max_prepared_statements).
DB_PREPARED_STATEMENTS = env.bool("DB_PREPARED_STATEMENTS", default=True)

# How core's own mechanisms (key rotation) record audit events (core itself imports no app).
AUDIT_EVENT_RECORDER = "audit.services.audit_event_record"

# Where core.scoping finds organizations and memberships (core itself imports no app).
ORGANIZATION_DIRECTORY = "accounts.scoping.AccountsDirectory"
OIDC_JWKS_CACHE_SECONDS = env.int("OIDC_JWKS_CACHE_SECONDS", default=300)
OIDC_JWKS_REFETCH_COOLDOWN_SECONDS = env.int("OIDC_JWKS_REFETCH_COOLDOWN_SECONDS", default=30)

# --- REST framework and OpenAPI ---------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.PlatformJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": [],  # rate limits: core.api.ApiViewMixin
    "DEFAULT_RENDERER_CLASSES": ["core.renderers.FastJSONRenderer"],  # DRF's JSON bytes, by orjson
    "DEFAULT_PARSER_CLASSES": ["core.parsers.CheckedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.envelopes.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Healthcare integration platform",
    "DESCRIPTION": "Five partner APIs on one platform. Each tag is one API with its own credentials, "
    "error body and rate limits; see each operation's description.",
    "VERSION": PLATFORM_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # validatorUrl None: Swagger UI would otherwise load a badge image from validator.swagger.io (any host but
    # localhost); the docs load nothing from elsewhere.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Choice sets that several APIs name alike ("status", "trend"): one readable component each, not a hash suffix.
    "ENUM_NAME_OVERRIDES": {
        "AppointmentStatusEnum": ["scheduled", "rescheduled", "completed", "canceled"],
        "PatientStatusEnum": ["active", "inactive"],
        "TrainingSessionStatusEnum": ["active", "paused", "completed", "cancelled"],
        "SyncRunStatusEnum": ["pending", "running", "completed", "partial", "failed"],
        "TrendDirectionEnum": ["up", "down", "stable"],
        "PatientActivityStatusEnum": ["active", "has_upcoming", "recent_activity", "imported"],
    },
    # Each tag's prose: who calls the API, how to authenticate, where its docs are. core.openapi_examples appends
    # its error body and rate limits, generated from the views' declarations (core/apis.py).
    "TAGS": [
        {
            "name": "Platform",
            "description": "The platform's own routes: `/` and `/health` (public, no credentials), the platform "
            "token (`POST /api/v1/auth/token`: username and password -> a 1 hour bearer token for Mark, Routiq, "
            "the therapist dashboard and the LoveRescue app API) and Twilio's callbacks (signed with "
            "`X-Twilio-Signature`, called by Twilio only). Operators: `docs/operations.md` and "
            "`docs/identity.md` in the platform repository.",
        },
        {
            "name": "LoveRescue",
            "description": "Called by integration partners (e.g. SuperTool) acting for one therapist "
            "(`/api/integration/`), and by the LoveRescue app for its signed-in client (`/api/app/`). Partners "
            "exchange their `apiKey`, `apiSecret` and a `therapistId` at `POST /api/integration/auth` for a "
            "1 hour bearer token (expired: 401 `TOKEN_EXPIRED`); the app sends a platform token. Onboarding, "
            "consent rules and webhooks: `docs/loverescue.md` and `docs/webhooks.md` in the platform repository.",
        },
        {
            "name": "Mark",
            "description": "Called by a clinic's own systems (Mark, the clinic's WhatsApp assistant): patients, "
            "conversations, appointments, messages, webhooks (`/api/v1/`). Authenticate with a bearer platform "
            "token (`POST /api/v1/auth/token`) or the clinic's OIDC token; send `X-Organization-ID: org_...` "
            "when the user belongs to several clinics. Details: `docs/mark.md` in the platform repository.",
        },
        {
            "name": "CareOS",
            "description": "Called by referral partner platforms (e.g. BusinessOS) posting consented leads "
            "(`POST /api/leads/ingest`). Every request sends `X-API-Key` and `X-Platform`; the lead's phone "
            "number is encrypted to the platform's CareOS public key. Keys and rotation: `docs/careos.md` in "
            "the platform repository.",
        },
        {
            "name": "Therapist dashboard",
            "description": "Called by therapists and their supervisors tracking training sessions "
            "(`/api/session`, `/api/session/...`, `/api/evaluation`). Authenticate with a bearer platform or "
            "OIDC token of a user with a therapist or reviewer role in the organization (`X-Organization-ID`). "
            "Details: `docs/therapist-dashboard.md` in the platform repository.",
        },
        {
            "name": "Routiq",
            "description": "Called by practice staff's dashboards, per organization (patients, dashboards, the "
            "hourly Cliniko sync). Authenticate with a bearer OIDC token (Clerk-style, verified by JWKS) or a "
            "platform token, and name the organization with `X-Organization-ID` or in the path (`org_...`). "
            "Details: `docs/routiq.md` and `docs/identity.md` in the platform repository.",
        },
    ],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.openapi_examples.attach_examples",
    ],
}

# --- Rate limiting (django-ratelimit counts in the default cache) ------------------------------
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
RATELIMIT_USE_CACHE = "default"
# Addresses (IPs or CIDRs) of our own reverse proxies. X-Forwarded-For and X-Forwarded-Proto are believed
# only from them (core.net.client_ip); empty = believed from no one. Trusting by count let anyone who
# reached the app directly choose their address (issue 10, finding 6), so TRUSTED_PROXY_COUNT is gone.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
try:
    parse_networks(TRUSTED_PROXIES)
except ValueError as exc:
    raise ImproperlyConfigured(f"TRUSTED_PROXIES: {exc}") from None
if "TRUSTED_PROXY_COUNT" in env.ENVIRON:
    raise ImproperlyConfigured(
        "TRUSTED_PROXY_COUNT was replaced by TRUSTED_PROXIES (the proxies' addresses, comma-separated IPs or "
        "CIDRs): a count trusted X-Forwarded-For from anyone who reached the app directly."
    )

# locmem counts are per process: fine for one dev process, not for production (which sets REDIS_URL).
SILENCED_SYSTEM_CHECKS = [] if REDIS_URL else ["django_ratelimit.E003", "django_ratelimit.W001"]
if IS_PRODUCTION and not REDIS_URL:
    raise ImproperlyConfigured("Production needs REDIS_URL: rate limits must hold across processes.")

# --- Protected data -----------------------------------------------------------------------------
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[DEV_FIELD_KEY])
BLIND_INDEX_KEY = env.str("BLIND_INDEX_KEY", default=DEV_BLIND_INDEX_KEY)
API_KEY_BCRYPT_ROUNDS = env.int("API_KEY_BCRYPT_ROUNDS", default=12)

# --- Outbound HTTP ------------------------------------------------------------------------------
OUTBOUND_ALLOW_LOOPBACK = env.bool("OUTBOUND_ALLOW_LOOPBACK", default=False)
OUTBOUND_TIMEOUT_SECONDS = env.float("OUTBOUND_TIMEOUT_SECONDS", default=10.0)
OUTBOUND_MAX_RESPONSE_BYTES = env.int("OUTBOUND_MAX_RESPONSE_BYTES", default=1_048_576)

# --- Audit --------------------------------------------------------------------------------------
AUDIT_RETENTION_YEARS = env.int("AUDIT_RETENTION_YEARS", default=6)
if AUDIT_RETENTION_YEARS < 6:
    raise ImproperlyConfigured("AUDIT_RETENTION_YEARS may not be below 6 (HIPAA record retention).")

# --- Celery -------------------------------------------------------------------------------------
# With no REDIS_URL the broker is kombu's filesystem transport: no server, and still delivers between
# the web process, the worker and beat on one machine (they share the folder; CELERY_BROKER_DIR moves
# it, e.g. to a temporary folder in tests; every process of one deployment must use the same one).
CELERY_BROKER_DIR = Path(env.str("CELERY_BROKER_DIR", default=str(LOCAL_DIR / "celery-broker"))).resolve()
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("queue", "processed", "control"):
        (CELERY_BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "control_folder": str(CELERY_BROKER_DIR / "control"),  # fanout tables (default: the cwd)
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "store_processed": False,
    }
else:
    # Redis (docs/operations.md, "Workers"). A message a worker took but never acknowledged (it died, or lost
    # Redis while holding it: acks are late and countdowns wait in the worker) is delivered again after
    # visibility_timeout. It must exceed the longest countdown we set (message backoff: 1 h + 10 % jitter)
    # and the longest hard time limit (1 h), or a held message would run twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=7200),
        # Look for such messages every 10 s (one ZRANGE under a lock), not kombu's default 100 s.
        "unacked_restore_interval": 10,
        "unacked_restore_throttle": 1,
        # A broker that vanishes without closing the socket (failover, NAT) must not hang a publish from a
        # web request or a worker forever; kombu's BRPOP blocks for 1 s, well within these.
        "socket_connect_timeout": 5,
        "socket_timeout": 15,
        "socket_keepalive": True,
        "health_check_interval": 25,
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
# A worker never gives up on the broker (Celery's default stops after 100 attempts, about an hour of outage,
# and the process exits); config/celery.py also works around kombu 5.7's crash on reconnecting while it
# holds unacknowledged messages. A task running when the broker drops finishes; its lost ack makes Redis
# deliver it again after visibility_timeout, and the tasks are idempotent (docs/decisions.md).
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Queues (docs/operations.md, "Workers": one worker process per queue, each with its own concurrency), so a
# slow partner endpoint or a month's payouts can never hold the slot a crisis SMS needs. Every task is
# routed here by name (tests/faults/test_queues.py fails on a task without a route); a message whose
# purpose is urgent (MESSAGING_URGENT_PURPOSES, crisis alerts) goes to `critical` instead of `messaging`
# (config.celery.route_urgent_messages).
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = (
    "config.celery.route_urgent_messages",
    {
        # critical: crisis notifications and what raises or recovers them; short tasks only.
        "integration.tasks.raise_journal_crisis_alerts": {"queue": "critical"},
        "messaging.tasks.sweep_queued_messages": {"queue": "critical"},
        # messaging: every other SMS / WhatsApp / email send (bounded by the provider's timeouts).
        "messaging.tasks.send_message": {"queue": "messaging"},
        "patients.tasks.send_due_reminders": {"queue": "messaging"},  # Mark reminders: bulk, like sends
        # Mark WhatsApp: inbound voice-note fetch, assistant replies and conversation summaries (vendor
        # calls bounded by their timeouts), the idle-conversation sweeper.
        "patients.tasks.fetch_inbound_media": {"queue": "messaging"},
        "patients.tasks.assistant_reply": {"queue": "messaging"},
        "patients.tasks.summarize_conversation": {"queue": "messaging"},
        "patients.tasks.close_idle_conversations": {"queue": "messaging"},
        # webhooks: partner endpoints, which may hang up to WEBHOOK_TIMEOUT_SECONDS per attempt.
        "webhooks.tasks.deliver_webhook": {"queue": "webhooks"},
        # default: short periodic jobs and operations checks.
        "webhooks.tasks.sweep_due_webhook_deliveries": {"queue": "default"},
        "integration.tasks.send_high_alert_notifications": {"queue": "default"},
        "core.tasks.ping": {"queue": "default"},
        "core.tasks.record_heartbeat": {"queue": "default"},
        "core.tasks.compact_kept_counts": {"queue": "default"},
        # batch: long jobs (minutes to an hour): daily evaluations, digests, payouts, retention; syncs too.
        "integration.tasks.evaluate_daily_alerts": {"queue": "batch"},
        "integration.tasks.send_low_alert_digest": {"queue": "batch"},
        "leads.tasks.process_partner_payments": {"queue": "batch"},
        "leads.tasks.resume_payout_batches": {"queue": "batch"},
        "audit.tasks.purge_expired_audit_rows": {"queue": "batch"},
        "core.tasks.purge_idempotency_keys": {"queue": "batch"},
        # sync: Cliniko sync chunks (each bounded by CLINIKO_CHUNK_TIME_LIMIT_SECONDS, rate-limited by Cliniko),
        # the hourly scheduler and the stalled-run sweeper: a long sync never holds a batch or default slot.
        "sync.tasks.sync_run_chunk": {"queue": "sync"},
        "sync.tasks.start_scheduled_syncs": {"queue": "sync"},
        "sync.tasks.resume_stalled_runs": {"queue": "sync"},
    },
)

# --- Webhooks (webhooks/, docs/webhooks.md) ------------------------------------------------------
# Registration refuses plain-http URLs unless this is false (tests with receivers on 127.0.0.1).
WEBHOOK_REQUIRE_HTTPS = env.bool("WEBHOOK_REQUIRE_HTTPS", default=True)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
WEBHOOK_SECRET_OVERLAP_HOURS = env.float("WEBHOOK_SECRET_OVERLAP_HOURS", default=24.0)
WEBHOOK_DISABLE_AFTER_DAYS = env.float("WEBHOOK_DISABLE_AFTER_DAYS", default=5.0)
# A delivery's claim: 0 = 3 x the timeout + 60 s (longer than one attempt can last). A crashed worker's
# delivery is retried once it expires (docs/webhooks.md, "Leases and crashed workers").
WEBHOOK_LEASE_SECONDS = env.float("WEBHOOK_LEASE_SECONDS", default=0.0)
if WEBHOOK_LEASE_SECONDS and WEBHOOK_LEASE_SECONDS <= WEBHOOK_TIMEOUT_SECONDS * 3:
    raise ImproperlyConfigured("WEBHOOK_LEASE_SECONDS must exceed 3 x WEBHOOK_TIMEOUT_SECONDS (one attempt's limit).")
# A delivery task also sends up to this many more due deliveries of the same endpoint, one after another,
# starting requests for at most WEBHOOK_BATCH_SECONDS (docs/webhooks.md, "Batches"). 1 = one per task.
WEBHOOK_BATCH_SIZE = env.int("WEBHOOK_BATCH_SIZE", default=100)
WEBHOOK_BATCH_SECONDS = env.float("WEBHOOK_BATCH_SECONDS", default=5.0)
if IS_PRODUCTION and not WEBHOOK_REQUIRE_HTTPS:
    raise ImproperlyConfigured("WEBHOOK_REQUIRE_HTTPS=false is for tests and local demos only.")

# --- LoveRescue integration (integration/, docs/loverescue.md) -----------------------------------
# After a partner's secret is rotated, the old secret keeps working for this long.
LOVERESCUE_SECRET_OVERLAP_HOURS = env.float("LOVERESCUE_SECRET_OVERLAP_HOURS", default=24.0)

# --- CareOS leads (leads/, docs/careos.md) -------------------------------------------------------
# PEM private key partners encrypt phones to (optional: pairs can also live encrypted in the database,
# made by `manage.py generate_partner_keys`). "\n" escapes are accepted, as in the spec's .env.
CAREOS_PRIVATE_KEY = env.str("CAREOS_PRIVATE_KEY", default="")
# Largest lead_value_agreed accepted (USD).
CAREOS_MAX_LEAD_VALUE = env.float("CAREOS_MAX_LEAD_VALUE", default=1000.0)
# At most one welcome SMS and one paid lead per person within this many days, whichever partner referred
# them (docs/careos.md, "Partners see only their own").
CAREOS_REFERRAL_PERIOD_DAYS = env.int("CAREOS_REFERRAL_PERIOD_DAYS", default=30)
if CAREOS_REFERRAL_PERIOD_DAYS < 1:
    raise ImproperlyConfigured("CAREOS_REFERRAL_PERIOD_DAYS must be at least 1.")
# Retiring a CareOS key pair that decrypted a lead within this many days needs its full fingerprint typed
# (admin and service; docs/careos.md, "Key pairs in the admin"). 0 turns the guard off.
CAREOS_KEY_RETIRE_GUARD_DAYS = env.int("CAREOS_KEY_RETIRE_GUARD_DAYS", default=30)
if CAREOS_KEY_RETIRE_GUARD_DAYS < 0:
    raise ImproperlyConfigured("CAREOS_KEY_RETIRE_GUARD_DAYS must be 0 or more.")
# Stripe payouts (backend "stripe"): secret key and API base (tests point it at 127.0.0.1).
STRIPE_API_KEY = env.str("STRIPE_API_KEY", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")

# --- Private documents (staff only) ------------------------------------------------------------------
# Files staff upload that only staff may read (integration partners' signed BAAs): outside the code
# tree, never under STATIC_ROOT, no URL of their own; served only by permission-checked, audited admin
# views (docs/loverescue.md, "BAA documents"). Production: a persistent volume (docker-compose.yml).
PRIVATE_MEDIA_ROOT = Path(env.str("PRIVATE_MEDIA_ROOT", default=str(LOCAL_DIR / "private-media"))).resolve()
# Largest signed BAA (PDF) accepted by the partner admin, in bytes.
BAA_DOCUMENT_MAX_BYTES = env.int("BAA_DOCUMENT_MAX_BYTES", default=10 * 1024 * 1024)
if not 1024 <= BAA_DOCUMENT_MAX_BYTES <= 100 * 1024 * 1024:
    raise ImproperlyConfigured("BAA_DOCUMENT_MAX_BYTES must be between 1 kB and 100 MB.")

# --- Mark assistant (patients/, docs/mark.md) ------------------------------------------------------
# Default region a phone number written without "+" is read in (a clinic may set its own country).
# Private directory for Mark's audio files (voice notes) when kept on the filesystem.
MARK_MEDIA_ROOT = env.str("MARK_MEDIA_ROOT", default=str(BASE_DIR / ".local" / "mark-media"))
# Or an S3-compatible bucket (AWS S3, MinIO, Ceph...) through django-storages: private objects, read back by
# the app only (the signed URLs point at our view, never at the bucket).
MARK_MEDIA_STORAGE = env.str("MARK_MEDIA_STORAGE", default="filesystem")
if MARK_MEDIA_STORAGE not in {"filesystem", "s3"}:
    raise ImproperlyConfigured("MARK_MEDIA_STORAGE must be filesystem or s3.")
MARK_MEDIA_S3_BUCKET = env.str("MARK_MEDIA_S3_BUCKET", default="")
if MARK_MEDIA_STORAGE == "s3" and not MARK_MEDIA_S3_BUCKET:
    raise ImproperlyConfigured("MARK_MEDIA_STORAGE=s3 needs MARK_MEDIA_S3_BUCKET.")
# Voice messages' `content` URLs (signed, served by the app) expire after this many seconds.
MARK_MEDIA_URL_SECONDS = env.int("MARK_MEDIA_URL_SECONDS", default=900)
if not 1 <= MARK_MEDIA_URL_SECONDS <= 30 * 24 * 3600:
    raise ImproperlyConfigured("MARK_MEDIA_URL_SECONDS must be between 1 second and 30 days.")
# This server as API callers and Twilio reach it (https://api.example.com), for absolute media URLs;
# "" = the Twilio callback base URL, else the request's own host.
MARK_PUBLIC_BASE_URL = env.str("MARK_PUBLIC_BASE_URL", default="").rstrip("/")
if MARK_PUBLIC_BASE_URL and not MARK_PUBLIC_BASE_URL.startswith(("https://", "http://")):
    raise ImproperlyConfigured("MARK_PUBLIC_BASE_URL must be an http(s) URL.")
# POST /api/v1/messages/voice: largest audio file accepted (bytes; larger is 413).
MARK_VOICE_MAX_BYTES = env.int("MARK_VOICE_MAX_BYTES", default=10 * 1024 * 1024)
if not 1024 <= MARK_VOICE_MAX_BYTES <= 25 * 1024 * 1024:
    raise ImproperlyConfigured("MARK_VOICE_MAX_BYTES must be between 1 kB and 25 MB.")
# Speech-to-text of voice messages: "none" (transcription null) or "openai" (an OpenAI-compatible
# POST {MARK_STT_BASE_URL}/v1/audio/transcriptions; patients/clients/stt.py).
MARK_STT_BACKEND = env.str("MARK_STT_BACKEND", default="none")
if MARK_STT_BACKEND not in {"none", "openai"}:
    raise ImproperlyConfigured(f"MARK_STT_BACKEND must be none or openai, not {MARK_STT_BACKEND!r}")
MARK_STT_BASE_URL = env.str("MARK_STT_BASE_URL", default="https://api.openai.com").rstrip("/")
MARK_STT_API_KEY = env.str("MARK_STT_API_KEY", default="")
MARK_STT_MODEL = env.str("MARK_STT_MODEL", default="whisper-1")
MARK_STT_TIMEOUT_SECONDS = env.float("MARK_STT_TIMEOUT_SECONDS", default=30.0)
if MARK_STT_BACKEND == "openai" and not MARK_STT_BASE_URL.startswith(("https://", "http://")):
    raise ImproperlyConfigured("MARK_STT_BASE_URL must be an http(s) URL.")
if not 1 <= MARK_STT_TIMEOUT_SECONDS <= 120:
    raise ImproperlyConfigured("MARK_STT_TIMEOUT_SECONDS must be between 1 and 120.")
# Zoom (appointments' zoom_link, patients/services/zoom.py): OAuth and REST bases (tests point them at
# 127.0.0.1); each clinic's server-to-server app credentials live in its ClinicSettings. The call is in the
# booking request's path, so its timeout is short (a slow Zoom books without a link).
ZOOM_OAUTH_BASE_URL = env.str("ZOOM_OAUTH_BASE_URL", default="https://zoom.us").rstrip("/")
ZOOM_API_BASE_URL = env.str("ZOOM_API_BASE_URL", default="https://api.zoom.us").rstrip("/")
ZOOM_TIMEOUT_SECONDS = env.float("ZOOM_TIMEOUT_SECONDS", default=5.0)
# seed_demo's Mark demo clinic size (patients, each with conversations and appointments); tests use a few.
MARK_DEMO_PATIENTS = env.int("MARK_DEMO_PATIENTS", default=200)
MARK_DEFAULT_PHONE_REGION = env.str("MARK_DEFAULT_PHONE_REGION", default="ES").upper()
# The two WhatsApp reminders of an appointment ("24h" and "30min" kinds), in minutes before its start.
MARK_REMINDER_24H_MINUTES = env.int("MARK_REMINDER_24H_MINUTES", default=24 * 60)
MARK_REMINDER_30MIN_MINUTES = env.int("MARK_REMINDER_30MIN_MINUTES", default=30)
if MARK_REMINDER_24H_MINUTES < 1 or MARK_REMINDER_30MIN_MINUTES < 1:
    raise ImproperlyConfigured("MARK_REMINDER_24H_MINUTES and MARK_REMINDER_30MIN_MINUTES must be at least 1.")
# A message joins the patient's open conversation unless it has been idle this long; then a new one starts.
MARK_CONVERSATION_IDLE_MINUTES = env.int("MARK_CONVERSATION_IDLE_MINUTES", default=60)
if MARK_CONVERSATION_IDLE_MINUTES < 1:
    raise ImproperlyConfigured("MARK_CONVERSATION_IDLE_MINUTES must be at least 1.")
# The time zone reminder texts show the appointment time in (organizations have no time zone of their own yet).
MARK_TIME_ZONE = env.str("MARK_TIME_ZONE", default="Europe/Madrid")
try:
    ZoneInfo(MARK_TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured("MARK_TIME_ZONE must be an IANA time zone such as Europe/Madrid.") from None
# The assistant responder (per clinic: ClinicSettings.responder, its API key and model; docs/mark.md
# "WhatsApp: numbers, templates, inbound, assistant"): Anthropic's Messages API at this base URL.
MARK_RESPONDER_BASE_URL = env.str("MARK_RESPONDER_BASE_URL", default="https://api.anthropic.com").rstrip("/")
if not MARK_RESPONDER_BASE_URL.startswith(("https://", "http://")):
    raise ImproperlyConfigured("MARK_RESPONDER_BASE_URL must be an http(s) URL.")
MARK_RESPONDER_MODEL = env.str("MARK_RESPONDER_MODEL", default="claude-haiku-4-5")
MARK_RESPONDER_TIMEOUT_SECONDS = env.float("MARK_RESPONDER_TIMEOUT_SECONDS", default=30.0)
if not 1 <= MARK_RESPONDER_TIMEOUT_SECONDS <= 120:
    raise ImproperlyConfigured("MARK_RESPONDER_TIMEOUT_SECONDS must be between 1 and 120.")
# The longest date range (in days, both ends' days counted) GET /api/v1/analytics/* accept; longer is a 400.
MARK_ANALYTICS_MAX_DAYS = env.int("MARK_ANALYTICS_MAX_DAYS", default=366)
if MARK_ANALYTICS_MAX_DAYS < 1:
    raise ImproperlyConfigured("MARK_ANALYTICS_MAX_DAYS must be at least 1.")
# The field-encryption key rotation policy GET /api/v1/system/encryption/status reports: next_rotation is
# the last `manage.py rotate_encryption_keys` run plus this many days.
MARK_KEY_ROTATION_DAYS = env.int("MARK_KEY_ROTATION_DAYS", default=30)
if MARK_KEY_ROTATION_DAYS < 1:
    raise ImproperlyConfigured("MARK_KEY_ROTATION_DAYS must be at least 1.")

# --- Messaging (messaging/: SMS, WhatsApp and email outbox; docs/operations.md) --------------------
# console: logs "message msg_... via sms sent" only (no number, no body) and delivers nothing;
# locmem: tests, keeps every channel in messaging.backends.outbox; twilio: SMS and WhatsApp through
# Twilio's REST API. Email goes through Django's EMAIL_BACKEND for console and twilio.
MESSAGING_BACKEND = env.str("MESSAGING_BACKEND", default="console")
if MESSAGING_BACKEND not in {"console", "locmem", "twilio"}:
    raise ImproperlyConfigured(f"MESSAGING_BACKEND must be console, locmem or twilio, not {MESSAGING_BACKEND!r}")
MESSAGING_MAX_ATTEMPTS = env.int("MESSAGING_MAX_ATTEMPTS", default=5)
if MESSAGING_MAX_ATTEMPTS < 1:
    raise ImproperlyConfigured("MESSAGING_MAX_ATTEMPTS must be at least 1.")
# Claims (leases) on a message being sent. Ordinary messages: longer than a send can last. Urgent purposes
# (crisis alerts): a short lease kept alive by a heartbeat while the worker lives, so a crashed worker's
# message is sent again within seconds of the crash (docs/decisions.md, "Short leases for urgent messages").
MESSAGING_LEASE_SECONDS = env.float("MESSAGING_LEASE_SECONDS", default=300.0)
MESSAGING_URGENT_LEASE_SECONDS = env.float("MESSAGING_URGENT_LEASE_SECONDS", default=20.0)
MESSAGING_URGENT_PURPOSES = env.list("MESSAGING_URGENT_PURPOSES", default=["integration.alert_critical"])
if not 3 <= MESSAGING_URGENT_LEASE_SECONDS <= MESSAGING_LEASE_SECONDS:
    raise ImproperlyConfigured("MESSAGING_URGENT_LEASE_SECONDS must be between 3 and MESSAGING_LEASE_SECONDS.")
# Public base URL of this server as Twilio reaches it (https://api.example.com): status callbacks are
# requested at <base>/api/messaging/twilio/status and their signatures checked against that URL.
MESSAGING_STATUS_CALLBACK_BASE_URL = env.str("MESSAGING_STATUS_CALLBACK_BASE_URL", default="").rstrip("/")
if MESSAGING_STATUS_CALLBACK_BASE_URL and not MESSAGING_STATUS_CALLBACK_BASE_URL.startswith(("https://", "http://")):
    raise ImproperlyConfigured("MESSAGING_STATUS_CALLBACK_BASE_URL must be an http(s) URL.")
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM_NUMBER = env.str("TWILIO_FROM_NUMBER", default="")
TWILIO_WHATSAPP_FROM = env.str("TWILIO_WHATSAPP_FROM", default="")
TWILIO_API_BASE_URL = env.str("TWILIO_API_BASE_URL", default="https://api.twilio.com").rstrip("/")
if IS_PRODUCTION and MESSAGING_BACKEND == "locmem":
    raise ImproperlyConfigured("MESSAGING_BACKEND=locmem is for tests only.")
if IS_PRODUCTION and MESSAGING_BACKEND == "twilio":
    _missing_twilio = [
        name
        for name, value in (("TWILIO_ACCOUNT_SID", TWILIO_ACCOUNT_SID), ("TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN))
        if not value.strip()
    ]
    if not (TWILIO_FROM_NUMBER.strip() or TWILIO_WHATSAPP_FROM.strip()):
        _missing_twilio.append("TWILIO_FROM_NUMBER (or TWILIO_WHATSAPP_FROM)")
    if _missing_twilio:
        raise ImproperlyConfigured(
            "MESSAGING_BACKEND=twilio refuses to start without: " + ", ".join(_missing_twilio) + " (see README)."
        )
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="no-reply@localhost")
# EMAIL_URL (django-environ): smtp://user:pass@host:25, smtp+tls://...:587, smtp+ssl://...:465,
# dummymail://. Unset: a console backend that logs one redacted line per email (never Django's own
# console backend, which prints recipients and bodies).
EMAIL_URL = env.str("EMAIL_URL", default="")
if EMAIL_URL:
    globals().update(env.email_url_config(EMAIL_URL))
else:
    EMAIL_BACKEND = "messaging.backends.RedactedConsoleEmailBackend"
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)

# --- Cliniko (sync/clients.py; docs/routiq.md) -----------------------------------------------------
# Cliniko requires "App name (contact email)" as User-Agent and may block requests without a valid email.
CLINIKO_APP_NAME = env.str("CLINIKO_APP_NAME", default="Routiq")
CLINIKO_CONTACT_EMAIL = env.str("CLINIKO_CONTACT_EMAIL", default=DEFAULT_FROM_EMAIL)
CLINIKO_USER_AGENT = env.str("CLINIKO_USER_AGENT", default="") or f"{CLINIKO_APP_NAME} ({CLINIKO_CONTACT_EMAIL})"
# Requests per minute per API key, shared by every worker through Redis (Cliniko allows 200 per user).
CLINIKO_REQUESTS_PER_MINUTE = env.int("CLINIKO_REQUESTS_PER_MINUTE", default=200)
# 5xx/timeouts: retries with backoff (seconds, doubling, capped), then the sync run records the error.
CLINIKO_MAX_RETRIES = env.int("CLINIKO_MAX_RETRIES", default=4)
CLINIKO_RETRY_BACKOFF_SECONDS = env.float("CLINIKO_RETRY_BACKOFF_SECONDS", default=1.0)
CLINIKO_RETRY_BACKOFF_MAX_SECONDS = env.float("CLINIKO_RETRY_BACKOFF_MAX_SECONDS", default=30.0)
# 429: wait until X-RateLimit-Reset (at most this long per wait), at most this many times in a row.
CLINIKO_MAX_RATE_LIMIT_WAIT_SECONDS = env.float("CLINIKO_MAX_RATE_LIMIT_WAIT_SECONDS", default=120.0)
CLINIKO_MAX_RATE_LIMIT_RETRIES = env.int("CLINIKO_MAX_RATE_LIMIT_RETRIES", default=10)
# Pages fetched at once when Cliniko's total_entries is known (always within the rate budget).
CLINIKO_CONCURRENCY = env.int("CLINIKO_CONCURRENCY", default=4)
if CLINIKO_REQUESTS_PER_MINUTE < 1 or CLINIKO_CONCURRENCY < 1 or CLINIKO_MAX_RETRIES < 0:
    raise ImproperlyConfigured("CLINIKO_REQUESTS_PER_MINUTE and CLINIKO_CONCURRENCY must be >= 1, retries >= 0.")
if CLINIKO_MAX_RATE_LIMIT_RETRIES < 0 or CLINIKO_RETRY_BACKOFF_SECONDS < 0 or CLINIKO_MAX_RATE_LIMIT_WAIT_SECONDS <= 0:
    raise ImproperlyConfigured("CLINIKO_* retry and wait settings must not be negative.")
# Sync runs (sync/services.py; docs/routiq.md, "Sync runs"). Incremental runs ask for records updated since
# the last completed run's start minus this margin; a run older than CLINIKO_RUN_MAX_HOURS is failed
# (`stalled`). A chunk task fetches at most CLINIKO_CHUNK_PAGES pages and starts no new batch after
# CLINIKO_CHUNK_SECONDS; CLINIKO_CHUNK_TIME_LIMIT_SECONDS is its hard limit (its lease is 60 s longer).
CLINIKO_INCREMENTAL_MARGIN_MINUTES = env.int("CLINIKO_INCREMENTAL_MARGIN_MINUTES", default=10)
CLINIKO_RUN_MAX_HOURS = env.float("CLINIKO_RUN_MAX_HOURS", default=6.0)
CLINIKO_CHUNK_PAGES = env.int("CLINIKO_CHUNK_PAGES", default=20)
CLINIKO_CHUNK_SECONDS = env.float("CLINIKO_CHUNK_SECONDS", default=90.0)
CLINIKO_CHUNK_TIME_LIMIT_SECONDS = env.int("CLINIKO_CHUNK_TIME_LIMIT_SECONDS", default=300)
if CLINIKO_INCREMENTAL_MARGIN_MINUTES < 0 or CLINIKO_RUN_MAX_HOURS <= 0 or CLINIKO_CHUNK_PAGES < 1:
    raise ImproperlyConfigured("Need CLINIKO_INCREMENTAL_MARGIN_MINUTES >= 0, RUN_MAX_HOURS > 0, CHUNK_PAGES >= 1.")
if CLINIKO_CHUNK_TIME_LIMIT_SECONDS < CLINIKO_CHUNK_SECONDS + 150:
    raise ImproperlyConfigured("CLINIKO_CHUNK_TIME_LIMIT_SECONDS must exceed CLINIKO_CHUNK_SECONDS by 150 s.")
# Routiq dashboards (sync/selectors.py; docs/routiq.md, "Definitions"): an appointment is "recent" when it
# started within this many days.
ROUTIQ_RECENT_DAYS = env.int("ROUTIQ_RECENT_DAYS", default=30)
if not 1 <= ROUTIQ_RECENT_DAYS <= 3650:
    raise ImproperlyConfigured("ROUTIQ_RECENT_DAYS must be from 1 to 3650.")

# --- I18N / time ----------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Staff-only documents must never be collected or served as static files.
if PRIVATE_MEDIA_ROOT == STATIC_ROOT.resolve() or STATIC_ROOT.resolve() in PRIVATE_MEDIA_ROOT.parents:
    raise ImproperlyConfigured("PRIVATE_MEDIA_ROOT must not be inside STATIC_ROOT (it would be served).")
# Outside production, serve straight from the app finders: no collectstatic step for `make run`.
WHITENOISE_AUTOREFRESH = not IS_PRODUCTION
WHITENOISE_USE_FINDERS = not IS_PRODUCTION
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Mark's audio (patients/storage.py): private, outside the code, never served by a static/media route.
    "mark_media": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MARK_MEDIA_ROOT, "base_url": None},
    }
    if MARK_MEDIA_STORAGE == "filesystem"
    else {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": MARK_MEDIA_S3_BUCKET,
            "location": env.str("MARK_MEDIA_S3_PREFIX", default="mark-media"),
            # Empty: AWS itself; set for MinIO and other S3-compatible stores.
            "endpoint_url": env.str("MARK_MEDIA_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("MARK_MEDIA_S3_REGION", default="") or None,
            # Empty: boto3's own chain (AWS_ACCESS_KEY_ID..., an instance role).
            "access_key": env.str("MARK_MEDIA_S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("MARK_MEDIA_S3_SECRET_ACCESS_KEY", default="") or None,
            "default_acl": "private",
            "file_overwrite": False,
        },
    },
    # Staff-only documents under PRIVATE_MEDIA_ROOT (integration.storage): no URL, read back only by
    # audited admin views.
    "private_media": {"BACKEND": "integration.storage.PrivateFileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if IS_PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security (production) ------------------------------------------------------------------------
if IS_PRODUCTION:
    # Only our proxies' word counts: core.net.ForwardedProtoMiddleware drops the header from anyone else.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXIES else None
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_REDIRECT_EXEMPT = [r"^health$"]
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- Logging: never log request bodies; phone numbers and message text stay out of logs ----------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        # httpx logs full URLs (query strings may carry tokens or PHI) at INFO: keep it quiet.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # its start-up banner and a line per admin sign-in (lockouts still log)
    },
}
