"""The Setup pages: the installation's Options tab and each district's District Options tab."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext, gettext_noop
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST

from settings_app import permissions, selectors, services
from settings_app.forms import InstallationForm, MailSourceForm, SmtpSettingsForm
from settings_app.models import District, Installation, MailSource, Scope
from settings_app.permissions import AuthenticatedRequest
from settings_app.views.pages import (
    PENDING_SESSION_KEY,
    form_destination,
    options_url,
    page,
    pending_password,
    scope_for,
    smtp_form,
)

# What the page says when saving other server values cleared a stored credential (services.smtp_settings_save).
CLEARED_BY_A_MOVE = {
    services.CREDENTIAL: gettext_noop(
        "The server, port, transport or user ID changed, so the stored password was cleared. Enter the password again."
    ),
    services.OAUTH_ACCOUNT: gettext_noop(
        "The server, port, transport or user ID changed, so the connected account was disconnected. "
        "Press Connect account again."
    ),
    services.CLIENT_SECRET: gettext_noop(
        "The server, port, transport or user ID changed, so the stored client secret was cleared. "
        "Enter it again under Sign-in."
    ),
}


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
        return redirect(options_url(district))
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
    for credential, warning in CLEARED_BY_A_MOVE.items():
        if credential in cleared:
            messages.warning(request, gettext(warning))
    return redirect(options_url(scope))


@require_POST
def clear_password(request: AuthenticatedRequest, slug: str | None = None) -> HttpResponse:
    scope = scope_for(request, slug)
    if services.smtp_settings_clear_password(scope=scope, acting_user=request.user):
        messages.success(request, gettext("The stored password was cleared."))
    return redirect(options_url(scope))


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
