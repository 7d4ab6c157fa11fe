"""Test Server and Test email: the values on the form, tested now, saved or not."""

from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import formats, timezone
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST

from settings_app import crypto, selectors, services
from settings_app.crypto import Destination
from settings_app.delivery import cap
from settings_app.forms import TestEmailForm, normalise_host
from settings_app.mail import detect as mail_detect
from settings_app.mail import presets, transport
from settings_app.mail.config import SmtpConfig, Transport
from settings_app.mail.diagnosis import Category, Diagnosis
from settings_app.mail.message import build_test_message
from settings_app.models import Scope, SmtpSettings, TestKind, describe_destination
from settings_app.permissions import AuthenticatedRequest
from settings_app.views.pages import (
    form_destination,
    installation_of,
    keep_pending_password,
    page,
    pending_password,
    scope_for,
    smtp_form,
)

TOO_MANY = gettext_lazy("Too many tests in a minute: wait a moment, then try again.")


def _refused(destination: Destination, detail: str) -> Diagnosis:
    host, port, transport_name, _username = destination
    shown = f"{host}:{port} ({Transport(transport_name).label})"  # as a test names it (SmtpConfig.destination)
    return Diagnosis(shown, Category.PASSWORD_REQUIRED, steps=(), transcript=(), detail=detail)


@sensitive_variables("password")
def _config(request: AuthenticatedRequest, scope: Scope, data: dict) -> tuple[SmtpConfig | Diagnosis, bool]:
    """The connector configuration for the form's values, and whether it carries the stored credentials.

    The stored password goes only to the saved destination; elsewhere the result asks for the password.
    """
    destination = form_destination(data)
    saved = selectors.scope_settings(scope)
    if saved is not None and saved.uses_oauth and saved.destination == destination:
        # The account signs in with OAuth: the saved sign-in, never a typed password, is what delivery will use.
        try:
            return selectors.stored_smtp_config(saved, installation_of(scope)), True
        except crypto.CredentialsUnreadable:
            return _refused(destination, gettext("Credentials unreadable: enter the client secret again.")), False
    password = data["password"] or pending_password(request, scope, destination)
    from_store = not password
    if saved is not None and saved.uses_oauth and not password:
        return _refused(
            destination,
            gettext(
                "These values differ from the saved settings, whose account signs in with OAuth 2.0: save them and "
                "connect the account again, or type a password to test them with it."
            ),
        ), False
    if data["username"] and not password:
        row = selectors.scope_settings(scope)
        if row is None or not row.has_password:
            return _refused(destination, gettext("No password is stored: type it to test these settings.")), False
        if row.destination != destination:
            return _refused(
                destination,
                gettext(
                    "The server, port, transport or user ID differ from the saved settings, so the stored password "
                    "is not sent there. Type the password to test these values."
                ),
            ), False
        try:
            password = row.password()
        except crypto.CredentialsUnreadable:
            return _refused(destination, gettext("Credentials unreadable: enter the password again.")), False
    host, port, transport_name, username = destination
    config = selectors.smtp_config(
        installation=installation_of(scope),
        host=host,
        port=port,
        transport=transport_name,
        username=username,
        password=password,
    )
    return config, from_store


def _run(request: AuthenticatedRequest, scope: Scope, config: SmtpConfig, data: dict, send_to: str | None):
    """Test Server, or Test email to `send_to`: the diagnosis and a note about the sender used."""
    if send_to is None:
        return async_to_sync(transport.test_server)(config), ""
    message, sender, note = build_test_message(
        scope_name=scope.name,
        sent_by=request.user.get_username(),
        destination=config.destination,
        from_name=data["from_name"],
        from_email=data["from_email"],
        to=send_to,
        domain=config.ehlo_name,
    )
    send = async_to_sync(transport.send_test_email)
    return send(config, message=message, sender=sender, recipients=[send_to]), note


def _over_cap(row: SmtpSettings | None, saved_cap: int | None) -> str:
    """Take a slot of the scope's hourly cap for a test email; the refusal to show when none is free."""
    next_free = cap.try_reserve(row.pk) if row is not None else None
    if next_free is None:
        return ""
    return gettext(
        "This mail server has sent its maximum of %(cap)s emails in the last hour; the next can go at %(time)s."
    ) % {"cap": saved_cap, "time": formats.time_format(timezone.localtime(next_free), "H:i")}


@sensitive_post_parameters("smtp-password")
@require_POST
def test_connection(request: AuthenticatedRequest, kind: str, slug: str | None = None) -> HttpResponse:
    """Run Test Server or Test email on the posted values and show the diagnosis."""
    scope = scope_for(request, slug)
    inline = request.headers.get("X-Requested-With") == "fetch"
    row = selectors.scope_settings(scope)
    saved_cap = row.max_per_hour if row else None  # the form below writes the posted values into `row`
    form = smtp_form(request, scope, row)
    email_form = TestEmailForm(request.POST, prefix="test") if kind == TestKind.EMAIL else None
    if not form.is_valid() or (email_form is not None and not email_form.is_valid()):
        return _show(request, scope, inline, status=400, smtp_form=form, email_form=email_form)
    data, destination = form.cleaned_data, form_destination(form.cleaned_data)
    config, from_store = _config(request, scope, data)
    if isinstance(config, SmtpConfig) and email_form is not None and (refusal := _over_cap(row, saved_cap)):
        return _show(request, scope, inline, status=429, smtp_form=form, email_form=email_form, error=refusal)
    record = services.smtp_test_admit(
        scope=scope, acting_user=request.user, kind=TestKind(kind), destination=describe_destination(*destination)
    )
    if record is None:
        return _show(request, scope, inline, status=429, error=TOO_MANY)
    if isinstance(config, Diagnosis):
        diagnosis, note = config, ""
    else:
        diagnosis, note = _run(request, scope, config, data, email_form.cleaned_data["send_to"] if email_form else None)
    resumed = services.smtp_test_record(
        record=record, diagnosis=diagnosis, destination=destination, stored_credentials=from_store
    )
    if data["password"] and not inline:
        keep_pending_password(request, scope, destination, data["password"])
    return _show(
        request, scope, inline, smtp_form=form, email_form=email_form, diagnosis=diagnosis, note=note, resumed=resumed
    )


def _show(request: AuthenticatedRequest, scope: Scope, inline: bool, *, status: int = 200, **context) -> HttpResponse:
    if inline:
        return render(request, "settings_app/_test_result.html", context, status=status)
    destination_typed = context.get("diagnosis") is not None and bool(request.POST.get("smtp-password"))
    return page(request, scope, status=status, password_kept=destination_typed, **context)


def _detect_host(request: AuthenticatedRequest, scope: Scope) -> str:
    """The typed server address, else the host of the provider of the typed From email (raises ValidationError)."""
    typed = request.POST.get("smtp-host", "").strip()
    if typed:
        return normalise_host(typed, hosted=installation_of(scope).hosted)
    preset = presets.for_email(request.POST.get("smtp-from_email", ""))
    if preset is None:
        raise ValidationError(gettext("Enter the server address (or a From/Reply-To email at a known provider) first."))
    return preset.host


@require_POST
def detect(request: AuthenticatedRequest, slug: str | None = None) -> HttpResponse:
    """Auto-detect: probe 465, 587 and 25 of the host at once and propose the best port and transport."""
    scope = scope_for(request, slug)
    inline = request.headers.get("X-Requested-With") == "fetch"
    try:
        host = _detect_host(request, scope)
    except ValidationError as exc:
        return _show(request, scope, inline, status=400, error=" ".join(exc.messages))
    destination = f"{host} (ports {', '.join(str(port) for port, _ in mail_detect.CANDIDATES)})"  # the audit's name
    record = services.smtp_test_admit(
        scope=scope, acting_user=request.user, kind=TestKind.DETECT, destination=destination
    )
    if record is None:
        return _show(request, scope, inline, status=429, error=TOO_MANY)
    base = selectors.smtp_config(installation=installation_of(scope), host=host, port=25, transport="none")
    detection = async_to_sync(mail_detect.detect)(base)
    best = detection.best
    services.smtp_test_record(record=record, diagnosis=best.diagnosis if best else detection.probes[0].diagnosis)
    if inline:
        return render(request, "settings_app/_detect_result.html", {"detection": detection})
    initial: dict[str, object] = {
        key.removeprefix("smtp-"): value for key, value in request.POST.items() if key.startswith("smtp-")
    }
    initial.pop("password", None)
    if detection.best:
        initial.update(host=host, port=detection.best.port, transport=detection.best.best_transport)
    form = smtp_form(request, scope, selectors.scope_settings(scope), bound=False, initial=initial)
    return page(request, scope, smtp_form=form, detection=detection)
