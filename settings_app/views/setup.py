"""The Setup pages: the installation's Options tab and each district's District Options tab."""

import functools
import time

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST

from settings_app import crypto, permissions, selectors, services
from settings_app.crypto import Destination
from settings_app.forms import InstallationForm, MailSourceForm, OAuthSettingsForm, SmtpSettingsForm, TestEmailForm
from settings_app.mail import presets
from settings_app.models import District, Installation, MailSource, Scope, SmtpSettings, scope_kwargs
from settings_app.permissions import AuthenticatedRequest


def home(request: AuthenticatedRequest) -> HttpResponse:
    """Send each person to where their work is."""
    user = request.user
    if permissions.is_super_admin(user):
        return redirect("installation_options")
    district = permissions.administered_districts(user).first()
    if district:
        return redirect("district_options", slug=district.slug)
    school = permissions.staffed_schools(user).first()
    if school:
        return redirect("school_notices", slug=school.slug)
    raise PermissionDenied(gettext("Your account has no role in Destiny Mail yet. Ask your administrator for one."))


def setup_index(request: AuthenticatedRequest) -> HttpResponse:
    districts = permissions.administered_districts(request.user)
    if not districts.exists() and not permissions.is_super_admin(request.user):
        raise PermissionDenied
    context = {
        "is_super_admin": permissions.is_super_admin(request.user),
        "districts": districts.prefetch_related("schools"),
    }
    return render(request, "settings_app/setup.html", context)


PENDING_SESSION_KEY = "pending_smtp_password"  # noqa: S105 - a session key, not a secret
PENDING_SECONDS = 600


def _scope_key(scope: Scope) -> str:
    return f"{scope._meta.model_name}:{scope.pk}"


@sensitive_variables("password")
def keep_pending_password(request: AuthenticatedRequest, scope: Scope, destination: Destination, password: str) -> None:
    """Without JavaScript a typed password cannot stay in the field: keep it sealed in the session for Save."""
    request.session[PENDING_SESSION_KEY] = {
        "scope": _scope_key(scope),
        "sealed": crypto.seal(password, destination),
        "until": time.time() + PENDING_SECONDS,
    }


def pending_password(request: AuthenticatedRequest, scope: Scope, destination: Destination) -> str:
    """The password a test of this scope and destination kept in the last ten minutes, or ""."""
    pending = request.session.get(PENDING_SESSION_KEY)
    if not pending or pending["scope"] != _scope_key(scope) or pending["until"] < time.time():
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


def _options_url(scope: Scope) -> str:
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
        "scope_key": _scope_key(scope),
        "version": version,
        "keep": selectors.KEEP_SECONDS if version else 0,
        "row": row,
        "password": lambda: selectors.password_status(row()),
        "pause_advice": lambda: selectors.pause_advice(row()),
        "history": lambda: selectors.settings_history(scope),
        "options_url": _options_url(scope),
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


@sensitive_post_parameters("smtp-password")
def options(request: AuthenticatedRequest, slug: str | None = None) -> HttpResponse:
    """Show and save a scope's SMTP settings."""
    scope = scope_for(request, slug)
    if request.method != "POST":
        return page(request, scope)
    if isinstance(scope, District):
        return _save_district(request, scope)
    form = smtp_form(request, scope, selectors.scope_settings(scope))
    if not form.is_valid():
        return page(request, scope, smtp_form=form)
    return _saved(request, scope, form)


def _save_district(request: AuthenticatedRequest, district: District) -> HttpResponse:
    consortium = selectors.scope_settings(district.installation)
    source_form = MailSourceForm(request.POST, consortium_available=consortium is not None)
    if not source_form.is_valid():
        return page(request, district, source_form=source_form)
    source = source_form.cleaned_data["mail_source"]
    if source == MailSource.CONSORTIUM:
        services.district_set_mail_source(district=district, source=source, acting_user=request.user)
        messages.success(request, gettext("Saved: this district now sends through the consortium mail server."))
        return redirect(_options_url(district))
    form = smtp_form(request, district, selectors.scope_settings(district))
    if not form.is_valid():
        return page(request, district, source_form=source_form, smtp_form=form)
    return _saved(request, district, form)


@sensitive_variables("password")
def _saved(request: AuthenticatedRequest, scope: Scope, form: SmtpSettingsForm) -> HttpResponse:
    data = form.cleaned_data
    values = {field: data[field] for field in services.SETTINGS_FIELDS}
    password = data["password"] or pending_password(request, scope, form_destination(data))
    _, cleared = services.smtp_settings_save(scope=scope, values=values, password=password, acting_user=request.user)
    request.session.pop(PENDING_SESSION_KEY, None)
    messages.success(request, gettext("SMTP settings saved."))
    if cleared:
        messages.warning(
            request,
            gettext(
                "The server, port, transport or user ID changed, so the stored password was cleared. "
                "Enter the password again."
            ),
        )
    return redirect(_options_url(scope))


@require_POST
def clear_password(request: AuthenticatedRequest, slug: str | None = None) -> HttpResponse:
    scope = scope_for(request, slug)
    if services.smtp_settings_clear_password(scope=scope, acting_user=request.user):
        messages.success(request, gettext("The stored password was cleared."))
    return redirect(_options_url(scope))


@require_POST
def installation_general(request: AuthenticatedRequest) -> HttpResponse:
    """Save the installation's own options: name, hosting mode, EHLO name, reach and trust."""
    installation = permissions.get_installation_for_user(request.user)
    form = InstallationForm(request.POST, instance=Installation.objects.get(pk=installation.pk))
    if not form.is_valid():
        return page(request, installation, installation_form=form)
    services.installation_update(installation=installation, values=form.cleaned_data, acting_user=request.user)
    messages.success(request, gettext("Installation options saved."))
    return redirect("installation_options")
