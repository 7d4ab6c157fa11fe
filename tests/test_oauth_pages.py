"""The Sign-in card and its form: what it offers, refuses and warns about (never a secret)."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from settings_app import crypto
from settings_app.forms import InstallationForm, OAuthSettingsForm
from settings_app.models import SettingsChange, SmtpSettings
from tests import factories

pytestmark = pytest.mark.django_db


def _form(row, installation, **data):
    fields = {"auth_method": "oauth", "oauth_provider": "microsoft", "oauth_flow": "delegated", "oauth_client_id": "a"}
    posted = {f"oauth-{key}": value for key, value in {**fields, **data}.items()}
    return OAuthSettingsForm(posted, instance=row, installation=installation, prefix="oauth")


@pytest.fixture
def row(installation):
    return factories.smtp_settings(installation=installation, username="reports@district.org")


def test_google_has_no_app_only_sign_in(row, installation):
    form = _form(row, installation, oauth_provider="google", oauth_flow="app_only")
    assert not form.is_valid() and form.has_error("oauth_flow", "flow")


def test_microsoft_app_only_sign_in_needs_the_tenant(row, installation):
    assert _form(row, installation, oauth_flow="app_only").has_error("oauth_tenant", "tenant")
    assert _form(row, installation, oauth_flow="app_only", oauth_tenant="district.org").is_valid()


@pytest.mark.parametrize(
    ("tenant", "valid"),
    [
        ("district.org", True),
        ("9188040d-6c67-4c5b-b112-36a304b66dad", True),
        ("organizations", True),
        ("evil.example/oauth2?x=", False),
        ("../common", False),
        ("district.org#", False),
    ],
)
def test_the_tenant_is_a_directory_id_or_a_domain_since_it_goes_into_microsofts_urls(row, installation, tenant, valid):
    form = _form(row, installation, oauth_flow="app_only", oauth_tenant=tenant)
    assert form.is_valid() is valid
    assert form.has_error("oauth_tenant", "tenant_format") is not valid


def test_oauth_needs_the_mailbox_user_id_saved_first(installation):
    bare = factories.smtp_settings(installation=installation)
    assert _form(bare, installation).has_error("auth_method", "username")


def test_the_installations_identity_provider_is_offered_only_when_self_hosted_with_one(row, installation):
    assert not _form(row, installation, oauth_provider="installation").is_valid()
    installation.oauth_issuer = "https://idp.district.org"
    installation.save()
    assert _form(row, installation, oauth_provider="installation").is_valid()
    installation.hosting_mode = "hosted"
    assert not _form(row, installation, oauth_provider="installation").is_valid()


def test_a_hosted_installation_cannot_add_an_identity_provider(installation):
    data = {"name": "X", "hosting_mode": "hosted", "oauth_issuer": "https://idp.district.org"}
    form = InstallationForm(data, instance=installation)
    assert form.has_error("oauth_issuer", "hosted")
    form = InstallationForm(
        {**data, "hosting_mode": "self_hosted", "oauth_issuer": "http://idp"}, instance=installation
    )
    assert not form.is_valid()


def test_saving_the_app_registration_seals_the_secret_and_audits_it_without_its_value(client, row, super_admin):
    client.force_login(super_admin)
    posted = {
        "oauth-auth_method": "oauth",
        "oauth-oauth_provider": "google",
        "oauth-oauth_flow": "delegated",
        "oauth-oauth_client_id": "1234.apps.googleusercontent.com",
        "oauth-client_secret": "GOCSPX-secret-value",
    }

    response = client.post(reverse("installation_oauth"), posted)

    assert response.status_code == 302
    row.refresh_from_db()
    assert row.uses_oauth and row.oauth_client_secret() == "GOCSPX-secret-value"
    assert "GOCSPX-secret-value" not in row.oauth_client_secret_sealed
    audit = SettingsChange.objects.filter(installation=row.installation).first()
    assert audit.summary["Client secret"] == "entered" and "GOCSPX" not in str(audit.summary)
    page = client.get(reverse("installation_options")).content.decode()
    assert "GOCSPX-secret-value" not in page and "A client secret is stored." in page
    assert "7 days" in page  # Google's Testing apps


def test_the_card_warns_before_the_client_secret_expires_and_shows_the_redirect_url(client, row, super_admin, settings):
    settings.OAUTH_REDIRECT_URL = "https://mail.example.org/oauth/callback/"
    SmtpSettings.objects.filter(pk=row.pk).update(
        auth_method="oauth", oauth_client_secret_expires=timezone.localdate() + dt.timedelta(days=10)
    )
    client.force_login(super_admin)

    page = client.get(reverse("installation_options")).content.decode()

    assert 'id="secret-expiry"' in page and "The client secret expires on" in page
    assert 'value="https://mail.example.org/oauth/callback/" readonly' in page
    assert "No account connected." in page


def test_the_microsoft_365_preset_proposes_oauth_and_keeps_the_password_field(client, installation, super_admin):
    client.force_login(super_admin)
    page = client.get(reverse("installation_options"), {"preset": "microsoft365"}).content.decode()
    assert "Recommended instead of a password: Authentication: Sign in with Microsoft 365" in page
    assert 'name="smtp-password"' in page


def test_changing_the_app_registration_disconnects_the_account(client, row, super_admin):
    SmtpSettings.objects.filter(pk=row.pk).update(auth_method="oauth", oauth_provider="google", oauth_client_id="a")
    row.refresh_from_db()
    row.oauth_refresh_sealed = crypto.seal("refresh", row.oauth_binding)
    row.oauth_account = "reports@district.org"
    row.save()
    client.force_login(super_admin)
    posted = {
        "oauth-auth_method": "oauth",
        "oauth-oauth_provider": "google",
        "oauth-oauth_flow": "delegated",
        "oauth-oauth_client_id": "another-app",
    }

    client.post(reverse("installation_oauth"), posted)

    row.refresh_from_db()
    assert (row.oauth_refresh_sealed, row.oauth_account) == ("", "")
    audit = SettingsChange.objects.filter(installation=row.installation).first()
    assert audit.summary["OAuth account"] == "disconnected (app registration changed)"


def test_a_service_account_key_names_the_client_id_and_anything_else_is_refused(row, installation):
    import json

    from joserfc.jwk import RSAKey

    pem = RSAKey.generate_key(2048, private=True).as_pem(private=True).decode()
    key = {"type": "service_account", "client_email": "mailer@p.iam.gserviceaccount.com", "private_key": pem}
    form = _form(
        row, installation, oauth_provider="google", oauth_flow="service_account", client_secret=json.dumps(key)
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["oauth_client_id"] == "mailer@p.iam.gserviceaccount.com"
    not_a_key = _form(row, installation, oauth_provider="google", oauth_flow="service_account", client_secret="{}")
    assert not_a_key.has_error("client_secret", "service_account")
    microsoft = _form(row, installation, oauth_flow="service_account", client_secret=json.dumps(key))
    assert microsoft.has_error("oauth_flow", "flow")
