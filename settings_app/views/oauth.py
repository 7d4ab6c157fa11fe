"""Sign-in with OAuth 2.0: the app registration, Connect account (out to the provider and back), Disconnect."""

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_POST

from settings_app import crypto, selectors, services
from settings_app.forms import OAuthSettingsForm
from settings_app.mail.config import TokenUnavailable
from settings_app.models import Scope, SmtpSettings
from settings_app.oauth import connect
from settings_app.oauth.tokens import OAuthApp, oauth_app
from settings_app.permissions import AuthenticatedRequest
from settings_app.views.pages import installation_of, options_url, page, scope_for, scope_key


def _saved_row(request: AuthenticatedRequest, scope: Scope) -> SmtpSettings | None:
    row = selectors.scope_settings(scope)
    if row is None:
        messages.error(request, _("Save the SMTP settings first, then choose how the account signs in."))
    return row


@sensitive_post_parameters("oauth-client_secret")
@require_POST
def oauth_settings(request: AuthenticatedRequest, slug: str | None = None) -> HttpResponse:
    """Save the authentication method and the OAuth app registration."""
    scope = scope_for(request, slug)
    row = _saved_row(request, scope)
    if row is None:
        return redirect(options_url(scope))
    form = OAuthSettingsForm(request.POST, instance=row, installation=installation_of(scope), prefix="oauth")
    if not form.is_valid():
        return page(request, scope, oauth_form=form)
    values = {field: form.cleaned_data[field] for field in services.OAUTH_FIELDS}
    services.smtp_oauth_client_save(
        scope=scope, values=values, client_secret=form.cleaned_data["client_secret"], acting_user=request.user
    )
    messages.success(request, _("Sign-in settings saved."))
    return redirect(options_url(scope))


@require_POST
def oauth_connect(request: AuthenticatedRequest, slug: str | None = None) -> HttpResponse:
    """Send the administrator to the identity provider to sign in as the mail account."""
    scope = scope_for(request, slug)
    row = _saved_row(request, scope)
    if row is None or not (row.uses_oauth and row.oauth_provider and row.oauth_client_id):
        messages.error(request, _("Choose Sign in with OAuth 2.0 and save the app registration first."))
        return redirect(options_url(scope))
    installation = installation_of(scope)
    try:
        app = oauth_app(row, installation)
        url = connect.start(
            request.session,
            app=app,
            pending={"scope_key": scope_key(scope), "slug": slug, "user_id": request.user.pk},
            login_hint=row.username,
            hosted=installation.hosted,
        )
    except connect.ConnectRefused as exc:
        messages.error(request, str(exc))
        return redirect(options_url(scope))
    except crypto.CredentialsUnreadable:
        messages.error(request, _("The stored client secret cannot be read: enter it again."))
        return redirect(options_url(scope))
    return HttpResponseRedirect(url)


@require_GET
@sensitive_variables("tokens", "refresh_token")
def oauth_callback(request: AuthenticatedRequest) -> HttpResponse:
    """Where the identity provider sends the administrator back: check the state, trade the code, store the token."""
    try:
        scope, row, app, tokens = _signed_in(request)
    except connect.ConnectRefused as exc:
        return _refused(request, str(exc))
    except TokenUnavailable as exc:
        return _refused(request, exc.description or exc.error)
    except crypto.CredentialsUnreadable:
        return _refused(request, _("The stored client secret cannot be read: enter it again."))
    refresh_token = str(tokens.get("refresh_token") or "")
    if not services.smtp_oauth_connect(
        row_id=row.pk, binding=app.binding, refresh_token=refresh_token, account=row.username, acting_user=request.user
    ):
        return _refused(request, _("The identity provider sent no refresh token, or the settings changed meanwhile."))
    messages.success(request, _("Connected as %(account)s.") % {"account": row.username})
    return redirect(options_url(scope))


@sensitive_variables("code")
def _signed_in(request: AuthenticatedRequest) -> tuple[Scope, SmtpSettings, OAuthApp, dict[str, Any]]:
    """The scope, settings and app the callback's state stands for, and the tokens its code was traded for.

    Raises ConnectRefused, TokenUnavailable or crypto.CredentialsUnreadable; nothing is stored here.
    """
    pending = connect.take(request.session, request.GET.get("state", ""))
    scope = _pending_scope(request, pending)
    if "error" in request.GET:
        raise connect.ConnectRefused(
            _("The identity provider did not connect the account: %(error)s.") % {"error": request.GET["error"]}
        )
    row = SmtpSettings.objects.filter(pk=pending.row_id).first()
    if row is None or list(row.oauth_binding) != pending.binding:
        raise connect.ConnectRefused(_("The settings changed while you signed in: press Connect account again."))
    app = oauth_app(row, installation_of(scope))
    code = request.GET.get("code", "")
    return scope, row, app, connect.exchange(app, code=code, pending=pending)


def _pending_scope(request: AuthenticatedRequest, pending: connect.Pending) -> Scope:
    """The scope the sign-in was started for, if this same user may still administer it (else ConnectRefused)."""
    if pending.user_id != request.user.pk:
        raise connect.ConnectRefused(_("This sign-in was started by someone else."))
    try:
        scope = scope_for(request, pending.slug)
    except Http404 as exc:
        raise connect.ConnectRefused(_("You can no longer change these settings.")) from exc
    if scope_key(scope) != pending.scope_key:
        raise connect.ConnectRefused(_("This sign-in was started for other settings."))
    return scope


def _refused(request: AuthenticatedRequest, reason: str) -> HttpResponse:
    return render(request, "settings_app/oauth_refused.html", {"reason": reason}, status=400)


@require_POST
@sensitive_variables("sign_in")
def oauth_disconnect(request: AuthenticatedRequest, slug: str | None = None) -> HttpResponse:
    """Forget the connected account (its refresh token); delivery stops signing in until it is connected again."""
    scope = scope_for(request, slug)
    row = selectors.scope_settings(scope)
    sign_in = connect.stored_sign_in(row, installation_of(scope)) if row else None
    if not services.smtp_oauth_disconnect(scope=scope, acting_user=request.user):
        return redirect(options_url(scope))
    messages.success(request, _("The account was disconnected."))
    problem = connect.revoke_at_provider(*sign_in) if sign_in else None
    if problem:
        messages.warning(request, _("The provider could not revoke the sign-in: %(problem)s") % {"problem": problem})
    return redirect(options_url(scope))
