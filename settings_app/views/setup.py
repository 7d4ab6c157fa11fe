"""The Setup pages: the installation's Options tab and each district's District Options tab."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from settings_app import permissions, selectors, services
from settings_app.forms import InstallationForm, MailSourceForm, SmtpSettingsForm
from settings_app.models import District, Installation, MailSource, Scope, SmtpSettings, scope_kwargs


def home(request: HttpRequest) -> HttpResponse:
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
    raise PermissionDenied("Your account has no role in Destiny Mail yet. Ask your administrator for one.")


def setup_index(request: HttpRequest) -> HttpResponse:
    districts = permissions.administered_districts(request.user)
    if not districts.exists() and not permissions.is_super_admin(request.user):
        raise PermissionDenied
    return render(
        request,
        "settings_app/setup.html",
        {"is_super_admin": permissions.is_super_admin(request.user), "districts": districts},
    )


def _scope(request: HttpRequest, slug: str | None) -> Scope:
    if slug is None:
        return permissions.get_installation_for_user(request.user)
    return permissions.get_district_for_user(request.user, slug)


def _options_url(scope: Scope) -> str:
    if isinstance(scope, District):
        return reverse("district_options", kwargs={"slug": scope.slug})
    return reverse("installation_options")


def _installation(scope: Scope) -> Installation:
    return scope if isinstance(scope, Installation) else scope.installation


def _smtp_form(request: HttpRequest, scope: Scope, row: SmtpSettings | None) -> SmtpSettingsForm:
    instance = row or SmtpSettings(**scope_kwargs(scope))
    data = request.POST if request.method == "POST" else None
    return SmtpSettingsForm(data, instance=instance, installation=_installation(scope), prefix="smtp")


def _page(request: HttpRequest, scope: Scope, **forms) -> HttpResponse:
    row = selectors.scope_settings(scope)
    context = {
        "scope": scope,
        "row": row,
        "smtp_form": forms.get("smtp_form") or _smtp_form(request, scope, row),
        "password": selectors.password_status(row),
        "history": selectors.settings_history(scope),
        "options_url": _options_url(scope),
    }
    if isinstance(scope, Installation):
        context["installation_form"] = forms.get("installation_form") or InstallationForm(instance=scope)
        context["districts"] = selectors.district_statuses(scope)
        return render(request, "settings_app/installation_options.html", context)
    consortium = selectors.scope_settings(scope.installation)
    context["effective"] = selectors.effective_settings(scope)
    context["source_form"] = forms.get("source_form") or MailSourceForm(
        initial={"mail_source": scope.mail_source}, consortium_available=consortium is not None
    )
    return render(request, "settings_app/district_options.html", context)


@sensitive_post_parameters("smtp-password")
def options(request: HttpRequest, slug: str | None = None) -> HttpResponse:
    """Show and save a scope's SMTP settings."""
    scope = _scope(request, slug)
    if request.method != "POST":
        return _page(request, scope)
    if isinstance(scope, District):
        return _save_district(request, scope)
    form = _smtp_form(request, scope, selectors.scope_settings(scope))
    if not form.is_valid():
        return _page(request, scope, smtp_form=form)
    return _saved(request, scope, form)


def _save_district(request: HttpRequest, district: District) -> HttpResponse:
    consortium = selectors.scope_settings(district.installation)
    source_form = MailSourceForm(request.POST, consortium_available=consortium is not None)
    if not source_form.is_valid():
        return _page(request, district, source_form=source_form)
    source = source_form.cleaned_data["mail_source"]
    if source == MailSource.CONSORTIUM:
        services.district_set_mail_source(district=district, source=source, acting_user=request.user)
        messages.success(request, "Saved: this district now sends through the consortium mail server.")
        return redirect(_options_url(district))
    form = _smtp_form(request, district, selectors.scope_settings(district))
    if not form.is_valid():
        return _page(request, district, source_form=source_form, smtp_form=form)
    services.district_set_mail_source(district=district, source=source, acting_user=request.user)
    return _saved(request, district, form)


def _saved(request: HttpRequest, scope: Scope, form: SmtpSettingsForm) -> HttpResponse:
    values = {field: form.cleaned_data[field] for field in services.SETTINGS_FIELDS}
    _, cleared = services.smtp_settings_save(
        scope=scope, values=values, password=form.cleaned_data["password"], acting_user=request.user
    )
    messages.success(request, "SMTP settings saved.")
    if cleared:
        messages.warning(
            request,
            "The server, port, transport or user ID changed, so the stored password was cleared. "
            "Enter the password again.",
        )
    return redirect(_options_url(scope))


@require_POST
def clear_password(request: HttpRequest, slug: str | None = None) -> HttpResponse:
    scope = _scope(request, slug)
    if services.smtp_settings_clear_password(scope=scope, acting_user=request.user):
        messages.success(request, "The stored password was cleared.")
    return redirect(_options_url(scope))


@require_POST
def installation_general(request: HttpRequest) -> HttpResponse:
    """Save the installation's own options: name, hosting mode, EHLO name, reach and trust."""
    installation = permissions.get_installation_for_user(request.user)
    form = InstallationForm(request.POST, instance=Installation.objects.get(pk=installation.pk))
    if not form.is_valid():
        return _page(request, installation, installation_form=form)
    services.installation_update(installation=installation, values=form.cleaned_data, acting_user=request.user)
    messages.success(request, "Installation options saved.")
    return redirect("installation_options")
