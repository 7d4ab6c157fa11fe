"""Page helpers shared by the Setup views and the Test views: the scope from the URL, the settings form, the page,
and the password a test keeps for Save."""

import functools
import time

from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.debug import sensitive_variables

from settings_app import crypto, permissions, selectors
from settings_app.crypto import Destination
from settings_app.forms import InstallationForm, MailSourceForm, OAuthSettingsForm, SmtpSettingsForm, TestEmailForm
from settings_app.mail import presets
from settings_app.models import District, Installation, Scope, SmtpSettings, scope_kwargs
from settings_app.permissions import AuthenticatedRequest

PENDING_SESSION_KEY = "pending_smtp_password"  # noqa: S105 - a session key, not a secret
PENDING_SECONDS = 600


def scope_key(scope: Scope) -> str:
    """Names the scope in sessions and cache keys."""
    return f"{scope._meta.model_name}:{scope.pk}"


@sensitive_variables("password")
def keep_pending_password(request: AuthenticatedRequest, scope: Scope, destination: Destination, password: str) -> None:
    """Without JavaScript a typed password cannot stay in the field: keep it sealed in the session for Save."""
    request.session[PENDING_SESSION_KEY] = {
        "scope": scope_key(scope),
        "sealed": crypto.seal(password, destination),
        "until": time.time() + PENDING_SECONDS,
    }


def pending_password(request: AuthenticatedRequest, scope: Scope, destination: Destination) -> str:
    """The password a test of this scope and destination kept in the last ten minutes, or ""."""
    pending = request.session.get(PENDING_SESSION_KEY)
    if not pending or pending["scope"] != scope_key(scope) or pending["until"] < time.time():
        return ""
    try:
        return crypto.unseal(pending["sealed"], destination)
    except crypto.CredentialsUnreadable:
        return ""


def form_destination(data: dict) -> Destination:
    return (data["host"], data["port"], data["transport"], data["username"])


def scope_for(request: AuthenticatedRequest, slug: str | None) -> Scope:
    if slug is None:
        return permissions.get_installation_for_user(request.user)
    return permissions.get_district_for_user(request.user, slug)


def options_url(scope: Scope) -> str:
    if isinstance(scope, District):
        return reverse("district_options", kwargs={"slug": scope.slug})
    return reverse("installation_options")


def _test_urls(scope: Scope) -> dict[str, str]:
    actions = {"test_server_url": "test_server", "test_email_url": "test_email", "detect_url": "detect"}
    actions |= {"oauth_url": "oauth", "oauth_connect_url": "oauth_connect", "oauth_disconnect_url": "oauth_disconnect"}
    if isinstance(scope, District):
        return {key: reverse(f"district_{name}", kwargs={"slug": scope.slug}) for key, name in actions.items()}
    return {key: reverse(f"installation_{name}") for key, name in actions.items()}


def installation_of(scope: Scope) -> Installation:
    return scope if isinstance(scope, Installation) else scope.installation


def smtp_form(
    request: AuthenticatedRequest,
    scope: Scope,
    row: SmtpSettings | None,
    *,
    bound: bool = True,
    initial: dict | None = None,
) -> SmtpSettingsForm:
    instance = row or SmtpSettings(**scope_kwargs(scope))
    data = request.POST if bound and request.method == "POST" else None
    return SmtpSettingsForm(
        data, instance=instance, initial=initial, installation=installation_of(scope), prefix="smtp"
    )


def page(request: AuthenticatedRequest, scope: Scope, *, status: int = 200, **given) -> HttpResponse:
    """The Options or District Options tab, with any bound forms and test result passed in `given`.

    A plain view keeps its parts per process while the database holds the same data (selectors.data_version): the
    reads below are callables, made only when a part is rendered anew.
    """
    version = "" if given else permissions.request_version(request.user)

    @functools.cache
    def rows() -> tuple[SmtpSettings | None, SmtpSettings | None]:
        if isinstance(scope, District):
            return selectors.district_settings(scope)
        return selectors.scope_settings(scope), None

    def row() -> SmtpSettings | None:
        return rows()[0]

    preset = presets.BY_KEY.get(request.GET.get("preset", ""))
    initial = {"host": preset.host, "port": preset.port, "transport": preset.transport} if preset else None
    context = {
        "scope": scope,
        "scope_key": scope_key(scope),
        "version": version,
        "keep": selectors.KEEP_SECONDS if version else 0,
        "row": row,
        "password": lambda: selectors.password_status(row()),
        "pause_advice": lambda: selectors.pause_advice(row()),
        "history": lambda: selectors.settings_history(scope),
        "options_url": options_url(scope),
        "presets": presets.PRESETS,
        "preset": preset,
        **_test_urls(scope),
        **given,
    }
    context.setdefault(
        "smtp_form", functools.cache(lambda: smtp_form(request, scope, row(), bound=False, initial=initial))
    )
    context.setdefault(
        "oauth_form",
        functools.cache(
            lambda: OAuthSettingsForm(
                instance=row() or SmtpSettings(**scope_kwargs(scope)),
                installation=installation_of(scope),
                prefix="oauth",
            )
        ),
    )
    context["oauth"] = lambda: selectors.oauth_status(row())
    context["email_form"] = given.get("email_form") or functools.cache(
        lambda: TestEmailForm(prefix="test", initial={"send_to": getattr(request.user, "email", "")})
    )
    if isinstance(scope, Installation):
        context.setdefault("installation_form", InstallationForm(instance=scope))
        context["districts"] = lambda: selectors.district_statuses(scope)
        return render(request, "settings_app/installation_options.html", context, status=status)
    context["effective"] = lambda: selectors.Effective.of(scope.mail_source, *rows())
    context.setdefault(
        "source_form",
        functools.cache(
            lambda: MailSourceForm(
                initial={"mail_source": scope.mail_source}, consortium_available=rows()[1] is not None
            )
        ),
    )
    return render(request, "settings_app/district_options.html", context, status=status)
