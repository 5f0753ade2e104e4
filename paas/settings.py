"""Berth settings: every value comes from the environment, with embedded defaults.

The defaults run the product on one machine with no configuration: a SQLite file in
the state folder, Redis on loopback and the local Docker engine.
"""

import os
import shlex
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key

from paas.installation import load_installation_id

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def private_dir(path: Path) -> Path:
    """Create `path` owner-only (0700) from the start, and tighten one we own that is not.

    The state folder holds the database, the secret key, registry keys and TLS client
    keys: nobody else on the machine may list or read it, not even for a moment.
    """
    old_umask = os.umask(0o077)
    try:
        path.mkdir(parents=True, exist_ok=True)
    finally:
        os.umask(old_umask)
    info = path.stat()
    if info.st_uid == os.getuid() and info.st_mode & 0o077:
        path.chmod(0o700)
    return path


def private_file(path: Path, data: str | None = None) -> bool:
    """Create `path` with mode 0600 in one step (os.open, O_EXCL), writing `data` through a
    temporary file linked into place, so no reader ever sees it partly written or readable
    by others. An existing file we own is tightened to 0600. True when this call made it."""
    if path.exists():
        if path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return False
    if data is None:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            return False
        return True
    temp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(data)
    try:
        os.link(temp, path)  # fails when another process was first: theirs is kept
    except FileExistsError:
        return False
    finally:
        temp.unlink()
    return True


BERTH_STATE_DIR = private_dir(Path(os.environ.get("BERTH_STATE_DIR", BASE_DIR / "var")).resolve())


def _load_secret_key() -> str:
    """Use DJANGO_SECRET_KEY, else a key generated once and kept in the state folder (0600)."""
    if os.environ.get("DJANGO_SECRET_KEY"):
        return os.environ["DJANGO_SECRET_KEY"]
    key_file = BERTH_STATE_DIR / "secret_key"
    private_file(key_file, get_random_secret_key())
    return key_file.read_text().strip()


SECRET_KEY = _load_secret_key()
DEBUG = env_bool("DJANGO_DEBUG", True)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.sites",
    "rest_framework",
    "django_filters",  # its templates: the browsable API's filter form
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "allauth.socialaccount.providers.gitlab",
    "allauth.socialaccount.providers.openid_connect",
    "channels",
    "apps.core",
    "apps.portal",
    "apps.tenants",
    "apps.accounts",
    "apps.activity",
    "apps.hosts",
    "apps.catalog",
    "apps.deployments",
    "apps.registry",
    "apps.traffic",
    "apps.monitoring",
    "apps.autoscaling",
    "apps.logs",
    "apps.alerts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.accounts.middleware.TimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "apps.tenants.middleware.CurrentTenantMiddleware",
]

ROOT_URLCONF = "paas.urls"
WSGI_APPLICATION = "paas.wsgi.application"
ASGI_APPLICATION = "paas.asgi.application"

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
                "apps.portal.context_processors.berth",
            ],
        },
    },
]


def _database() -> dict:
    """DATABASE_URL, with PostgreSQL connections reused from a pool where possible.

    Daphne (ASGI) runs every request in a thread of its own, so a persistent connection
    (CONN_MAX_AGE > 0) is tied to a thread that never serves again: nothing is reused and
    the connections pile up until the server restarts. A psycopg pool is shared by all
    threads: Django takes a connection at the first query and gives it back when the
    request ends. BERTH_DB_POOL: `auto` (default: on for PostgreSQL when the psycopg_pool
    package is installed), `on` (required) or `off` (a new connection per request).
    BERTH_DB_CONN_MAX_AGE (seconds) is for synchronous servers only and excludes the pool.
    """
    url = os.environ.get("DATABASE_URL", f"sqlite:///{BERTH_STATE_DIR / 'berth.sqlite3'}")
    conn_max_age = int(os.environ.get("BERTH_DB_CONN_MAX_AGE", "0"))
    database = dj_database_url.parse(url, conn_max_age=conn_max_age)
    wanted = os.environ.get("BERTH_DB_POOL", "auto").strip().lower()
    if wanted not in {"auto", "1", "true", "yes", "on", "0", "false", "no", "off"}:
        raise ImproperlyConfigured("BERTH_DB_POOL is auto, on or off.")
    postgres = database["ENGINE"] == "django.db.backends.postgresql"
    if wanted == "auto":
        try:
            import psycopg_pool  # noqa: F401
        except ImportError:
            pool = False
        else:
            pool = postgres and conn_max_age == 0
    else:
        pool = wanted in {"1", "true", "yes", "on"}
    if pool and (not postgres or conn_max_age):
        raise ImproperlyConfigured(
            "BERTH_DB_POOL=on needs a PostgreSQL DATABASE_URL and BERTH_DB_CONN_MAX_AGE=0."
        )
    if pool:
        database["OPTIONS"] = {
            **database.get("OPTIONS", {}),
            "pool": {
                "min_size": int(os.environ.get("BERTH_DB_POOL_MIN_SIZE", "2")),
                "max_size": int(os.environ.get("BERTH_DB_POOL_MAX_SIZE", "10")),
                # Seconds a request waits for a free connection before it fails.
                "timeout": float(os.environ.get("BERTH_DB_POOL_TIMEOUT", "10")),
            },
        }
        # A connection is checked when taken from the pool (one empty query), so a
        # restarted PostgreSQL costs no failed request.
        database["CONN_HEALTH_CHECKS"] = True
    if database["ENGINE"] == "django.db.backends.sqlite3":
        # Created 0600 before SQLite opens it (its -wal and -shm files copy that mode).
        if database["NAME"] not in ("", ":memory:") and not str(database["NAME"]).startswith(
            "file:"
        ):
            private_file(Path(database["NAME"]))
        # The embedded database of `make run` is written by daphne, the Celery worker's
        # processes and beat at once (a push to the registry brings a notification per
        # layer and a usage refresh). In SQLite's default mode a transaction that reads,
        # then writes, fails at once with "database is locked" when another process
        # writes; IMMEDIATE takes the write lock first and waits up to `timeout` seconds
        # for it, and WAL lets readers go on meanwhile.
        database["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            **database.get("OPTIONS", {}),
        }
    return database


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 reads with a 5 s socket timeout by default, the same as channels_redis'
        # blocking receive (BZPOPMIN 5 s): every idle socket would die with "Timeout
        # reading". A longer read timeout keeps them open.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
    }
}

# Celery: tasks carry ids, are acknowledged after they finish and are safe to re-run.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Fail fast when Redis is down: a request queueing work must not hang (apps/core/queue.py).
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "max_retries": 1}
BERTH_HEARTBEAT_SECONDS = int(os.environ.get("BERTH_HEARTBEAT_SECONDS", "30"))
BERTH_RECONCILE_SECONDS = int(os.environ.get("BERTH_RECONCILE_SECONDS", "30"))
BERTH_RECONCILE_LEASE_SECONDS = int(os.environ.get("BERTH_RECONCILE_LEASE_SECONDS", "60"))
# Between full lists, a host pass lists only the containers the engine's events named
# since the previous pass (apps/deployments/listing.py); everything is listed again at
# least this often. 0: every pass lists every container.
BERTH_RECONCILE_FULL_LIST_SECONDS = float(
    os.environ.get("BERTH_RECONCILE_FULL_LIST_SECONDS", "300")
)
BERTH_ORPHAN_GRACE_SECONDS = int(os.environ.get("BERTH_ORPHAN_GRACE_SECONDS", "300"))
# A deleted tenant's containers are stopped at once, removed (with its networks and
# volumes) after this long: time to notice a mistake and copy data out of a volume.
BERTH_TENANT_REMOVAL_GRACE_SECONDS = int(
    os.environ.get("BERTH_TENANT_REMOVAL_GRACE_SECONDS", "3600")
)
# Part of every engine object's name and labels (paas/installation.py).
BERTH_INSTALLATION_ID = load_installation_id(BERTH_STATE_DIR)
BERTH_OPERATION_TIMEOUT = int(os.environ.get("BERTH_OPERATION_TIMEOUT", "600"))
BERTH_VERSION = "0.1.0"
# Called with (event, obj) for every Event recorded (apps/activity/services.py), so the
# activity app, which every app uses, calls no app above it: the stack's live stream
# learns of its events through this list. Not an operator setting.
BERTH_EVENT_HOOKS = ["apps.deployments.live.broadcast_event"]
# Called with (service) before a person's scale (apps/deployments/services.py: scale); each
# may refuse it with a ValidationError. Autoscaling refuses while it manages the service.
# Not an operator setting.
BERTH_MANUAL_SCALE_CHECKS = ["apps.autoscaling.services.refuse_manual_scale"]
# How long the activity log keeps an event (days; 0 keeps them all), and how often beat
# deletes older ones (apps/activity/services.py: prune_events, in batches).
BERTH_EVENT_RETENTION_DAYS = int(os.environ.get("BERTH_EVENT_RETENTION_DAYS", "365"))
BERTH_EVENT_PRUNE_SECONDS = int(os.environ.get("BERTH_EVENT_PRUNE_SECONDS", "3600"))
# Live streams (apps/deployments/consumers/).
BERTH_LIVE_RECHECK_SECONDS = int(os.environ.get("BERTH_LIVE_RECHECK_SECONDS", "2"))
BERTH_SHELL_IDLE_SECONDS = int(os.environ.get("BERTH_SHELL_IDLE_SECONDS", "900"))
# Shell output flow control (apps/deployments/WEBSOCKETS.md): bytes a client may leave
# unacknowledged (0: off), and how long a full window may wait for an ack (close 4429).
BERTH_SHELL_WINDOW_BYTES = int(os.environ.get("BERTH_SHELL_WINDOW_BYTES", str(1024 * 1024)))
BERTH_SHELL_ACK_SECONDS = int(os.environ.get("BERTH_SHELL_ACK_SECONDS", "120"))
BERTH_LIVE_STREAM_THREADS = int(os.environ.get("BERTH_LIVE_STREAM_THREADS", "64"))
# Threads for the websockets' database work (sign-in, access checks, catch-up): each
# holds at most one connection, so keep it below BERTH_DB_POOL_MAX_SIZE.
BERTH_LIVE_DB_THREADS = int(os.environ.get("BERTH_LIVE_DB_THREADS", "4"))
# Each user's share of them, and of open websockets (apps/deployments/live_limits.py).
BERTH_LIVE_STREAMS_PER_USER = int(os.environ.get("BERTH_LIVE_STREAMS_PER_USER", "16"))
BERTH_LIVE_SOCKETS_PER_USER = int(os.environ.get("BERTH_LIVE_SOCKETS_PER_USER", "20"))
# Central logs (apps/logs/): how often beat runs a collection pass over every engine host
# (each pass reads each container's new lines once and returns), how many containers a
# pass reads at once (each holds a database connection); the lease a pass holds
# on a container; the lines one container may bring in one pass (the rest come next
# pass) and per transaction; how long a line must be old before it is collected (lines
# of stdout and stderr may reach the log file slightly out of order); how long lines
# are kept (days; an environment may say otherwise: LogRetention, which tenant owners
# and admins set from 1 to BERTH_LOG_RETENTION_MAX_DAYS) and how often beat deletes
# older ones.
BERTH_LOG_COLLECT_SECONDS = float(os.environ.get("BERTH_LOG_COLLECT_SECONDS", "10"))
BERTH_LOG_COLLECT_THREADS = int(os.environ.get("BERTH_LOG_COLLECT_THREADS", "4"))
BERTH_LOG_LEASE_SECONDS = int(os.environ.get("BERTH_LOG_LEASE_SECONDS", "120"))
BERTH_LOG_MAX_LINES_PER_PASS = int(os.environ.get("BERTH_LOG_MAX_LINES_PER_PASS", "200000"))
BERTH_LOG_BATCH_LINES = int(os.environ.get("BERTH_LOG_BATCH_LINES", "5000"))
BERTH_LOG_SETTLE_SECONDS = float(os.environ.get("BERTH_LOG_SETTLE_SECONDS", "1"))
# A resumed pass first reads this many lines from the log's end (cheap), and reads with
# `since` (the engine decodes the whole file) only when they do not reach back; 0: never.
BERTH_LOG_TAIL_LINES = int(os.environ.get("BERTH_LOG_TAIL_LINES", "2000"))
BERTH_LOG_RETENTION_DAYS = int(os.environ.get("BERTH_LOG_RETENTION_DAYS", "7"))
BERTH_LOG_RETENTION_MAX_DAYS = int(os.environ.get("BERTH_LOG_RETENTION_MAX_DAYS", "90"))
BERTH_LOG_PRUNE_SECONDS = int(os.environ.get("BERTH_LOG_PRUNE_SECONDS", "3600"))
CELERY_BEAT_SCHEDULE = {
    "hosts.heartbeat": {
        "task": "hosts.heartbeat_all",
        "schedule": BERTH_HEARTBEAT_SECONDS,
    },
    "deployments.reconcile": {
        "task": "deployments.reconcile_all",
        "schedule": BERTH_RECONCILE_SECONDS,
    },
    "deployments.retire_tenants": {
        "task": "deployments.retire_tenants",
        "schedule": BERTH_RECONCILE_SECONDS,
    },
    "logs.collect": {
        "task": "logs.collect_all",
        "schedule": BERTH_LOG_COLLECT_SECONDS,
    },
    "logs.prune": {
        "task": "logs.prune",
        "schedule": BERTH_LOG_PRUNE_SECONDS,
    },
    "activity.prune_events": {
        "task": "activity.prune_events",
        "schedule": BERTH_EVENT_PRUNE_SECONDS,
    },
}
# Fairness. Worker processes (`celery worker` reads this unless given --concurrency), and
# how many of them one tenant's engine work may hold at once (apps/core/queue.py): a
# tenant at its bound has its task re-queued, so a slow tenant always leaves a worker free.
CELERY_WORKER_CONCURRENCY = int(os.environ.get("BERTH_WORKER_CONCURRENCY", "2"))
BERTH_TENANT_WORKER_SLOTS = int(
    os.environ.get("BERTH_TENANT_WORKER_SLOTS", str(max(1, CELERY_WORKER_CONCURRENCY - 1)))
)
# The longest stop_grace_period a compose file may ask for (a stop holds a worker that
# long); a file asking more is refused (apps/compose/limits.py).
BERTH_MAX_STOP_GRACE_SECONDS = int(os.environ.get("BERTH_MAX_STOP_GRACE_SECONDS", "120"))
# Time limits: no task holds a worker for ever. The soft limit raises in the task (the
# reconciler gives its lease back); the hard one kills the process 30 s later (the lease
# expires; reconciling is idempotent, so the next pass carries on). A task that hit a limit
# is acknowledged, not redelivered: the periodic reconcile picks the stack up again.
CELERY_TASK_SOFT_TIME_LIMIT = int(os.environ.get("BERTH_TASK_SOFT_TIME_LIMIT", "120"))
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 30
CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT = True
# A reconcile may wait out a whole operation plus one stop grace period.
BERTH_RECONCILE_TIME_LIMIT = BERTH_OPERATION_TIMEOUT + BERTH_MAX_STOP_GRACE_SECONDS + 60
BERTH_REGISTRY_GC_TIME_LIMIT = int(os.environ.get("BERTH_REGISTRY_GC_TIME_LIMIT", "1800"))
_RECONCILE_LIMITS = {
    "soft_time_limit": BERTH_RECONCILE_TIME_LIMIT,
    "time_limit": BERTH_RECONCILE_TIME_LIMIT + 30,
}
CELERY_TASK_ANNOTATIONS = {
    "deployments.reconcile_stack": _RECONCILE_LIMITS,
    "deployments.reconcile_host": _RECONCILE_LIMITS,
    "deployments.container_action": _RECONCILE_LIMITS,
    "deployments.retire_tenant": _RECONCILE_LIMITS,
    "deployments.retire_tenants": _RECONCILE_LIMITS,
    "registry.garbage_collect": {
        "soft_time_limit": BERTH_REGISTRY_GC_TIME_LIMIT,
        "time_limit": BERTH_REGISTRY_GC_TIME_LIMIT + 30,
    },
}

BERTH_DOCKER_HOST = os.environ.get("BERTH_DOCKER_HOST", "unix:///var/run/docker.sock")
BERTH_ENGINE_TIMEOUT = int(os.environ.get("BERTH_ENGINE_TIMEOUT", "10"))

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
    "guardian.backends.ObjectPermissionBackend",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BERTH_STATE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Static files are collected by `make run`; scanning the finders per request handler made
# every test client cost half a second.
WHITENOISE_USE_FINDERS = False

SITE_ID = 1
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "portal:dashboard"
LOGOUT_REDIRECT_URL = "account_login"

# Mail: console by default; SMTP when EMAIL_HOST is set.
if os.environ.get("EMAIL_HOST"):
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = os.environ["EMAIL_HOST"]
    EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587"))
    EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "berth@localhost")

# Security headers; check --deploy passes when DEBUG is off.
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "apps.core.pagination.CappedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [],
    "EXCEPTION_HANDLER": "apps.core.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Berth API",
    "DESCRIPTION": "Self-hosted PaaS for microservices. Authenticate with "
    "`Authorization: Bearer <token>` (create tokens under Settings > API tokens).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Both docs pages load static/vendor/ copies (deploy/vendor-static.sh): ReDoc's bundle
    # is patched there not to load its logo from a CDN. No calls to validator.swagger.io
    # either: the docs pages talk to this server only.
    "SWAGGER_UI_DIST": f"{STATIC_URL}vendor/swagger-ui",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SWAGGER_UI_FAVICON_HREF": f"{STATIC_URL}vendor/swagger-ui/favicon-32x32.png",
    "REDOC_DIST": f"{STATIC_URL}vendor/redoc",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Hosts and stacks both have a `state` with different choices: name each enum.
    "ENUM_NAME_OVERRIDES": {
        "HostStateEnum": "apps.hosts.models.Host.State",
        "HostKindEnum": "apps.hosts.models.Host.Kind",
        "KindEnum": "apps.traffic.models.Certificate.Kind",  # its name before Host.Kind
        "SwarmNodeAvailabilityEnum": "apps.hosts.models.SwarmNode.Availability",
        "StackStateEnum": "apps.deployments.models.Stack.State",
        "TemplateVisibilityEnum": "apps.catalog.models.Template.Visibility",
        "RepositoryVisibilityEnum": "apps.registry.models.Repository.Visibility",
        "RobotScopeEnum": "apps.registry.models.RobotAccount.Scope",
        "TokenScopeEnum": [("read", "read"), ("write", "write")],
    },
}

# Accounts: django-allauth for local sign-up and OAuth providers.
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = os.environ.get("BERTH_EMAIL_VERIFICATION", "mandatory")
if ACCOUNT_EMAIL_VERIFICATION not in {"mandatory", "optional", "none"}:
    raise ImproperlyConfigured("BERTH_EMAIL_VERIFICATION: use mandatory, optional or none.")
ACCOUNT_ADAPTER = "apps.accounts.adapters.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "apps.accounts.adapters.SocialAccountAdapter"
BERTH_ALLOW_SIGNUP = env_bool("BERTH_ALLOW_SIGNUP", True)
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Berth] "
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "http" if DEBUG else "https"

# OAuth providers (GitHub, GitLab, OpenID Connect), each switched on by its client id.
from apps.accounts.oauth_settings import socialaccount_providers_from_env  # noqa: E402

SOCIALACCOUNT_PROVIDERS = socialaccount_providers_from_env(os.environ)

# LDAP: switched on by BERTH_LDAP_URI; apps/accounts/ldap_settings.py maps the variables.
if os.environ.get("BERTH_LDAP_URI"):
    from apps.accounts.ldap_settings import ldap_settings_from_env  # noqa: E402

    globals().update(ldap_settings_from_env(os.environ))
    AUTHENTICATION_BACKENDS.insert(0, "apps.accounts.ldap.BerthLDAPBackend")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("BERTH_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

BERTH_INVITATION_DAYS = int(os.environ.get("BERTH_INVITATION_DAYS", "7"))

# The quota a new tenant starts with (platform admins change each tenant's on its page, in
# the API or the admin site); 0 is unlimited. Memory in MiB here, bytes in the database.
BERTH_TENANT_QUOTA_DEFAULTS = {
    "stacks": int(os.environ.get("BERTH_QUOTA_STACKS", "0")),
    "containers": int(os.environ.get("BERTH_QUOTA_CONTAINERS", "0")),
    "memory": int(os.environ.get("BERTH_QUOTA_MEMORY_MB", "0")) * 1024 * 1024,
    "cpus": os.environ.get("BERTH_QUOTA_CPUS", "0"),
    "pids": int(os.environ.get("BERTH_QUOTA_PIDS", "0")),
}
# Modules that report a tenant's quota lines (`quota_lines(tenant)`) and set their own
# limits (`set_quota_values(actor, tenant, values)`): the tenant's page and API show
# them together without the tenants app importing the apps above it.
BERTH_QUOTA_PROVIDERS = ["apps.deployments.quotas", "apps.registry.quota"]

# Private registry (apps/registry): Debian's docker-registry behind Berth's token service.
BERTH_PUBLIC_URL = os.environ.get("BERTH_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
BERTH_REGISTRY_ADDR = os.environ.get("BERTH_REGISTRY_ADDR", "127.0.0.1:5000")
# Where docker-registry itself listens, behind the gate (HAProxy) that serves
# BERTH_REGISTRY_ADDR; empty means loopback on the next port (5000 -> 127.0.0.1:5001).
BERTH_REGISTRY_BACKEND_ADDR = os.environ.get("BERTH_REGISTRY_BACKEND_ADDR", "")
BERTH_REGISTRY_SERVICE = os.environ.get("BERTH_REGISTRY_SERVICE", "berth-registry")
BERTH_REGISTRY_ISSUER = "berth"
BERTH_REGISTRY_TOKEN_SECONDS = min(int(os.environ.get("BERTH_REGISTRY_TOKEN_SECONDS", "300")), 300)
BERTH_REGISTRY_ANONYMOUS_PULL = env_bool("BERTH_REGISTRY_ANONYMOUS_PULL", False)
# The registry's config as `make run` writes it (garbage collection measures the disk
# under its storage folder); tests point it at their own.
BERTH_REGISTRY_CONFIG = BERTH_STATE_DIR / "registry" / "config.yml"
# The command garbage collection runs (apps/registry/gc.py): the script that started the
# registry restarts it read-only, runs `garbage-collect`, restarts it read-write.
BERTH_REGISTRY_GC_COMMAND = shlex.split(os.environ.get("BERTH_REGISTRY_GC_COMMAND", "")) or [
    "bash",
    str(BASE_DIR / "deploy" / "registry.sh"),
    "gc",
]
# How far a registry notification's timestamp may be from now (replays are refused).
BERTH_REGISTRY_EVENT_WINDOW = 3600
# The built-in catalog `loadcatalog` reads when given no path.
BERTH_CATALOG_DIR = BASE_DIR / "catalog"
# The Site's domain (links in mail) `berth_bootstrap` sets.
BERTH_SITE_DOMAIN = os.environ.get("BERTH_SITE_DOMAIN", "127.0.0.1:8000")

# Certificates for the frontier's HTTPS routes (apps/traffic/certificates.py, acme.py).
# ACME (RFC 8555, Let's Encrypt's protocol): the CA's directory URL (empty: ACME is off,
# a route asking for it says so), the contact e-mail of Berth's account, a CA file to
# trust for the directory's own HTTPS (a test CA such as pebble; empty: the system's).
BERTH_ACME_DIRECTORY = os.environ.get("BERTH_ACME_DIRECTORY", "")
BERTH_ACME_EMAIL = os.environ.get("BERTH_ACME_EMAIL", "")
BERTH_ACME_CA_BUNDLE = os.environ.get("BERTH_ACME_CA_BUNDLE", "")
# Renew this many days before the end; retry a failed order after this many seconds; one
# order may take this long (challenge validation and issuance).
BERTH_ACME_RENEW_DAYS = int(os.environ.get("BERTH_ACME_RENEW_DAYS", "30"))
BERTH_ACME_RETRY_SECONDS = int(os.environ.get("BERTH_ACME_RETRY_SECONDS", "3600"))
BERTH_ACME_TIMEOUT = int(os.environ.get("BERTH_ACME_TIMEOUT", "90"))
# How often beat runs the certificates' maintenance (renewal, expiry, retries).
BERTH_CERTIFICATE_CHECK_SECONDS = int(os.environ.get("BERTH_CERTIFICATE_CHECK_SECONDS", "600"))
CELERY_BEAT_SCHEDULE["traffic.certificates"] = {
    "task": "traffic.maintain_certificates",
    "schedule": BERTH_CERTIFICATE_CHECK_SECONDS,
}
CELERY_TASK_ANNOTATIONS["traffic.issue_certificate"] = {
    "soft_time_limit": BERTH_ACME_TIMEOUT + 120,
    "time_limit": BERTH_ACME_TIMEOUT + 150,
}

# The frontier: HAProxy in front of the services (apps/traffic). Berth renders its
# configuration from the Route rows into BERTH_FRONTIER_DIR and reloads it through the
# master CLI socket there. HTTP on BERTH_FRONTIER_ADDR, HTTPS on BERTH_FRONTIER_TLS_ADDR
# (empty: no HTTPS listener). In production put them on :80 and :443.
BERTH_FRONTIER_DIR = Path(
    os.environ.get("BERTH_FRONTIER_DIR", BERTH_STATE_DIR / "frontier")
).resolve()
BERTH_FRONTIER_ADDR = os.environ.get("BERTH_FRONTIER_ADDR", "127.0.0.1:8880")
BERTH_FRONTIER_TLS_ADDR = os.environ.get("BERTH_FRONTIER_TLS_ADDR", "127.0.0.1:8443")
# How long a container stays out of the frontier, still running, before it is stopped:
# requests already sent to it finish meanwhile.
BERTH_FRONTIER_DRAIN_SECONDS = float(os.environ.get("BERTH_FRONTIER_DRAIN_SECONDS", "2"))
# How often beat runs the health pass of every host: Berth's own http/tcp probes (each at
# its own interval, at most this often) and the replacement of containers unhealthy past
# their threshold (apps/deployments/probes.py).
BERTH_HEALTH_SECONDS = float(os.environ.get("BERTH_HEALTH_SECONDS", "2"))
CELERY_BEAT_SCHEDULE["deployments.check_health"] = {
    "task": "deployments.check_health_all",
    "schedule": BERTH_HEALTH_SECONDS,
}
CELERY_TASK_ANNOTATIONS["deployments.check_health"] = _RECONCILE_LIMITS
# Lines added to the frontier's `global` section as they are (tuning, logging), one a line.
BERTH_FRONTIER_EXTRA_GLOBAL = os.environ.get("BERTH_FRONTIER_EXTRA_GLOBAL", "")

# Metrics (apps/monitoring): the collector samples every container, host and frontier route
# this often (0: off); rows are kept in tiers "step:retention" in seconds, finest (raw)
# first: 10 s for a day, 1 min for a week, 10 min for 90 days. The rollup downsamples and
# deletes expired rows this often. Engine calls run in this many threads per host.
BERTH_METRICS_INTERVAL_SECONDS = int(os.environ.get("BERTH_METRICS_INTERVAL_SECONDS", "10"))
BERTH_METRICS_TIERS = os.environ.get("BERTH_METRICS_TIERS", "10:86400,60:604800,600:7776000")
BERTH_METRICS_ROLLUP_SECONDS = int(os.environ.get("BERTH_METRICS_ROLLUP_SECONDS", "60"))
BERTH_METRICS_THREADS = int(os.environ.get("BERTH_METRICS_THREADS", "32"))
# A bearer token for /metrics (the platform's Prometheus endpoint) besides platform admins'
# own credentials; empty: admins only. The endpoint is never open.
BERTH_METRICS_TOKEN = os.environ.get("BERTH_METRICS_TOKEN", "")
if BERTH_METRICS_INTERVAL_SECONDS > 0:
    CELERY_BEAT_SCHEDULE["monitoring.collect"] = {
        "task": "monitoring.collect",
        "schedule": BERTH_METRICS_INTERVAL_SECONDS,
    }
    CELERY_BEAT_SCHEDULE["monitoring.rollup"] = {
        "task": "monitoring.rollup",
        "schedule": BERTH_METRICS_ROLLUP_SECONDS,
    }

# Disk of each host (apps/monitoring/disk.py): every this many seconds (0: off) a probe
# container on each engine measures the filesystem holding the engine's data root; the
# probe image is built on the engine from this static busybox (Debian's busybox-static).
BERTH_DISK_PROBE_SECONDS = int(os.environ.get("BERTH_DISK_PROBE_SECONDS", "300"))
BERTH_PROBE_BUSYBOX = os.environ.get("BERTH_PROBE_BUSYBOX", "/bin/busybox")
if BERTH_DISK_PROBE_SECONDS > 0:
    CELERY_BEAT_SCHEDULE["monitoring.probe_disks"] = {
        "task": "monitoring.probe_disks",
        "schedule": BERTH_DISK_PROBE_SECONDS,
    }

# Autoscaling (apps/autoscaling): every this many seconds (0: off) each service with
# autoscaling on is judged on its stored metrics of the last WINDOW seconds (never before
# its last scale); scaling in aims SCALE_IN_MARGIN below the target, so that one
# container fewer does not land right above it again (hysteresis).
BERTH_AUTOSCALING_INTERVAL_SECONDS = int(os.environ.get("BERTH_AUTOSCALING_INTERVAL_SECONDS", "30"))
BERTH_AUTOSCALING_WINDOW_SECONDS = int(os.environ.get("BERTH_AUTOSCALING_WINDOW_SECONDS", "120"))
BERTH_AUTOSCALING_SCALE_IN_MARGIN = float(
    os.environ.get("BERTH_AUTOSCALING_SCALE_IN_MARGIN", "0.1")
)
if BERTH_AUTOSCALING_INTERVAL_SECONDS > 0:
    CELERY_BEAT_SCHEDULE["autoscaling.evaluate"] = {
        "task": "autoscaling.evaluate_all",
        "schedule": BERTH_AUTOSCALING_INTERVAL_SECONDS,
    }

# Alerts (apps/alerts): every rule is evaluated this often (0: off); a delivery that
# failed is retried after BASE, 2 BASE, 4 BASE ... seconds (at most MAX), up to
# MAX_ATTEMPTS attempts; a webhook call or an SMTP exchange gives up after SEND_TIMEOUT
# seconds. Webhooks never go to link-local (metadata), multicast or reserved addresses;
# loopback and private networks only when allowed here.
BERTH_ALERTS_INTERVAL_SECONDS = int(os.environ.get("BERTH_ALERTS_INTERVAL_SECONDS", "30"))
BERTH_ALERTS_RETRY_BASE_SECONDS = float(os.environ.get("BERTH_ALERTS_RETRY_BASE_SECONDS", "30"))
BERTH_ALERTS_RETRY_MAX_SECONDS = float(os.environ.get("BERTH_ALERTS_RETRY_MAX_SECONDS", "3600"))
BERTH_ALERTS_MAX_ATTEMPTS = int(os.environ.get("BERTH_ALERTS_MAX_ATTEMPTS", "8"))
BERTH_ALERTS_SEND_TIMEOUT = float(os.environ.get("BERTH_ALERTS_SEND_TIMEOUT", "10"))
BERTH_ALERTS_WEBHOOK_ALLOW_LOOPBACK = env_bool("BERTH_ALERTS_WEBHOOK_ALLOW_LOOPBACK", False)
BERTH_ALERTS_WEBHOOK_ALLOW_PRIVATE = env_bool("BERTH_ALERTS_WEBHOOK_ALLOW_PRIVATE", False)
if BERTH_ALERTS_INTERVAL_SECONDS > 0:
    CELERY_BEAT_SCHEDULE["alerts.evaluate"] = {
        "task": "alerts.evaluate",
        "schedule": BERTH_ALERTS_INTERVAL_SECONDS,
    }

# A periodic trigger still queued when the next one is due is skipped (it expires after
# one interval): behind busy workers (fifty deploys at once) beat's triggers would
# otherwise pile up in front of the tenants' work and all run, stale, once a worker frees.
for _entry in CELERY_BEAT_SCHEDULE.values():
    _entry.setdefault("options", {}).setdefault("expires", float(_entry["schedule"]))
