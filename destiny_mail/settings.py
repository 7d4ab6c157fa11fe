"""Settings for Destiny Mail, read from the environment (and a local `.env` file in development).

Every variable is documented in README.md and `.env.example`.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
# Fernet keys for the stored SMTP passwords, newest first; kept apart from SECRET_KEY.
SMTP_ENCRYPTION_KEYS = env.list("SMTP_ENCRYPTION_KEYS", default=[])
if not SECRET_KEY or not SMTP_ENCRYPTION_KEYS:
    raise ImproperlyConfigured(
        "SECRET_KEY and SMTP_ENCRYPTION_KEYS must be set (bin/setup writes development values to .env)."
    )
if not DEBUG and len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters long.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

HTTPS = env.bool("HTTPS", default=False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# The language cookie (the switch on every page) is read by the server only.
LANGUAGE_COOKIE_SECURE = HTTPS
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tasks_db",
    "settings_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "destiny_mail.urls"
WSGI_APPLICATION = "destiny_mail.wsgi.application"
ASGI_APPLICATION = "destiny_mail.asgi.application"

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
                "settings_app.context_processors.navigation",
            ],
        },
    },
]

FORM_RENDERER = "settings_app.forms.WidgetRenderer"

# Each process keeps what its pages read and rendered while the database holds the same data
# (settings_app.selectors.data_version). It must stay in the process: SQLite's marker is counted per process.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "OPTIONS": {"MAX_ENTRIES": 1000}}}

(BASE_DIR / "var").mkdir(exist_ok=True)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # Opening a SQLite connection costs most of a millisecond; gunicorn's threads live as long as their worker and
    # each keeps its own.
    DATABASES["default"]["CONN_MAX_AGE"] = None
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A new PostgreSQL connection costs several milliseconds: requests borrow one from a pool per process instead.
    # It holds as many as a worker has threads (README: Deployment), since a Test Server keeps its thread busy.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 2, "max_size": 3}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

from django.utils.translation import gettext_lazy as _  # noqa: E402 - only the language names below need it

# The language of a page: the language cookie (the switch on every page), else the browser's Accept-Language.
# Notices are written in each patron's own language. README: Languages.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("es", _("Spanish"))]
LOCALE_PATHS = [BASE_DIR / "settings_app" / "locale"]
FORMAT_MODULE_PATH = "destiny_mail.formats"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "var" / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]

# Error pages and reports hide every secret-looking variable and posted field, even with DEBUG on.
DEFAULT_EXCEPTION_REPORTER_FILTER = "destiny_mail.error_reports.SecretHidingFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# Outgoing mail.
# The EHLO name announced to SMTP servers unless the installation sets its own (an FQDN, never a bare IP).
SMTP_EHLO_NAME = env.str("SMTP_EHLO_NAME", default="destiny-mail.localdomain")
# The sender used when a scope leaves From/Reply-To blank.
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Destiny Mail <no-reply@destiny-mail.localdomain>")
SMTP_CONNECT_TIMEOUT = env.float("SMTP_CONNECT_TIMEOUT", default=10.0)
SMTP_TOTAL_TIMEOUT = env.float("SMTP_TOTAL_TIMEOUT", default=30.0)
# OAuth 2.0: the callback URL registered at Microsoft / Google (this server's /oauth/callback/, as browsers see it).
OAUTH_REDIRECT_URL = env.str("OAUTH_REDIRECT_URL", default="http://127.0.0.1:8000/oauth/callback/")
# How many Test Server / Test email presses one user may make a minute.
SMTP_TESTS_PER_MINUTE = env.int("SMTP_TESTS_PER_MINUTE", default=10)

# Notice delivery (seconds unless said otherwise).
DELIVERY_RETRY_BASE = env.int("DELIVERY_RETRY_BASE", default=60)  # first retry after a temporary failure
DELIVERY_RETRY_MAX = env.int("DELIVERY_RETRY_MAX", default=3600)  # longest wait between retries
DELIVERY_GIVE_UP_AFTER = env.int("DELIVERY_GIVE_UP_AFTER", default=3 * 24 * 3600)  # then the notice fails
DELIVERY_BUSY_BASE = env.int("DELIVERY_BUSY_BASE", default=30)  # back-off of a configuration after a 421
DELIVERY_BUSY_MAX = env.int("DELIVERY_BUSY_MAX", default=1800)
DELIVERY_LEASE = env.int("DELIVERY_LEASE", default=300)  # a claimed batch returns to the queue after this
DELIVERY_BATCH = env.int("DELIVERY_BATCH", default=500)  # notices per claim (one SMTP connection)
DELIVERY_CAP_WINDOW = env.int("DELIVERY_CAP_WINDOW", default=3600)  # the "hour" of the hourly cap
DELIVERY_SWEEP_INTERVAL = env.int("DELIVERY_SWEEP_INTERVAL", default=60)  # re-enqueue what is due or lost
DELIVERY_CONCURRENCY = env.int("DELIVERY_CONCURRENCY", default=20)  # configurations a worker sends to at once
DELIVERY_ROUND_SECONDS = env.float("DELIVERY_ROUND_SECONDS", default=300.0)  # a round takes in new work this long
if DELIVERY_LEASE <= 4 * SMTP_TOTAL_TIMEOUT + 1:
    # A batch stops sending while its last message can still wait for four replies before the lease ends.
    raise ImproperlyConfigured("DELIVERY_LEASE must be more than 4 x SMTP_TOTAL_TIMEOUT + 1 seconds.")
