"""The OAuth actions under the role x scope x action matrix, and no OAuth secret in logs, pages or error reports."""

import logging

import pytest
from aiosmtplib.auth import auth_xoauth2_encode
from asgiref.sync import async_to_sync
from django.urls import reverse

from settings_app import crypto, selectors
from settings_app.mail import transport
from settings_app.models import SettingsChange, SmtpSettings
from settings_app.oauth.tokens import CACHE
from tests import factories
from tests.oauth_servers import CALLBACK, CLIENT_SECRET, MAILBOX, start_connect
from tests.test_access import ALLOWED, SCOPES

ISSUER = "https://idp.example.org"
PROVIDER_LOGGERS = ("authlib.oauth2.rfc6749", "authlib.oauth2.rfc7009", "authlib.oauth2.rfc7636")
OAUTH_ACTIONS = {"oauth_save": "oauth", "oauth_connect": "oauth_connect", "oauth_disconnect": "oauth_disconnect"}
OAUTH_FORM = {
    "oauth-auth_method": "oauth",
    "oauth-oauth_provider": "installation",
    "oauth-oauth_flow": "delegated",
    "oauth-oauth_client_id": "changed-client",
    "oauth-client_secret": "a-new-secret",
}


def _url(scope, action):
    if scope == "installation":
        return reverse(f"installation_{OAUTH_ACTIONS[action]}")
    return reverse(f"district_{OAUTH_ACTIONS[action]}", kwargs={"slug": scope})


@pytest.fixture
def oauth_world(installation, north, south, super_admin, north_admin, south_admin, north_staff, no_role_user):
    installation.oauth_issuer = ISSUER
    installation.save()
    for scope in (installation, north, south):
        kind = "installation" if scope is installation else "district"
        row = factories.smtp_settings(
            **{kind: scope},
            username="reports@example.org",
            auth_method="oauth",
            oauth_provider="installation",
            oauth_client_id="app",
        )
        row.oauth_refresh_sealed = crypto.seal("refresh-token-of-" + kind, row.oauth_binding)
        row.oauth_account = "reports@example.org"
        row.save()
    return {
        "super_admin": super_admin,
        "north_admin": north_admin,
        "south_admin": south_admin,
        "north_staff": north_staff,
        "no_role_user": no_role_user,
    }


def _snapshot():
    fields = ("id", "oauth_client_id", "oauth_refresh_sealed", "oauth_client_secret_sealed", "auth_method")
    return sorted(SmtpSettings.objects.values_list(*fields)), SettingsChange.objects.count()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("persona", "scope", "action"),
    [(p, s, a) for p in [*ALLOWED, "anonymous"] for s in SCOPES for a in OAUTH_ACTIONS],
)
def test_role_scope_oauth_action_matrix(client, oauth_world, persona, scope, action):
    if persona != "anonymous":
        client.force_login(oauth_world[persona])
    before = _snapshot()

    response = client.post(_url(scope, action), OAUTH_FORM if action == "oauth_save" else {})

    if persona == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
        assert _snapshot() == before
    elif scope in ALLOWED[persona]:
        assert response.status_code == 302
        if action == "oauth_connect":
            assert response["Location"].startswith(f"{ISSUER}/authorize?")
            assert _snapshot() == before
        else:
            assert _snapshot() != before
    else:
        assert response.status_code == 404
        assert _snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["installation_oauth", "installation_oauth_connect", "installation_oauth_disconnect"])
def test_oauth_actions_refuse_get(client, oauth_world, name):
    client.force_login(oauth_world["super_admin"])
    assert client.get(reverse(name)).status_code == 405


@pytest.mark.django_db
def test_the_callback_sends_an_anonymous_visitor_to_log_in_and_stores_nothing(client, oauth_world):
    before = _snapshot()
    response = client.get(CALLBACK, {"code": "x", "state": "y"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert _snapshot() == before


@pytest.mark.django_db(transaction=True)
def test_no_log_line_page_or_diagnosis_carries_any_form_of_an_oauth_secret(
    client, caplog, super_admin, oauth_row, identity_provider
):
    caplog.set_level(logging.DEBUG)
    client.force_login(super_admin)
    _, query = start_connect(client)
    code = identity_provider.approve(query, MAILBOX)
    client.get(CALLBACK, {"code": code, "state": query["state"]})
    oauth_row.refresh_from_db()
    config = selectors.stored_smtp_config(oauth_row, oauth_row.installation)
    diagnosis = async_to_sync(transport.test_server)(config)
    access = async_to_sync(config.oauth.access_token)()
    test_page = client.post(
        reverse("installation_test_server"),
        {
            "smtp-host": oauth_row.host,
            "smtp-port": str(oauth_row.port),
            "smtp-transport": oauth_row.transport,
            "smtp-username": oauth_row.username,
            "smtp-max_per_hour": "500",
        },
    ).content.decode()
    options_page = client.get(reverse("installation_options")).content.decode()
    oauth_row.refresh_from_db()

    secrets = [CLIENT_SECRET, oauth_row.oauth_refresh_token(), access, auth_xoauth2_encode(MAILBOX, access).decode()]
    assert diagnosis.ok and "The mail server works" in test_page and caplog.records
    # The local identity provider runs in this process; what Authlib's server side logs is the provider's, not ours.
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(PROVIDER_LOGGERS))
    shown = "\n".join([ours, test_page, options_page, repr(diagnosis), repr(config), str(diagnosis.transcript)])
    for secret in secrets:
        assert secret not in shown
    CACHE.clear()


@pytest.mark.django_db
def test_an_error_report_hides_the_posted_client_secret(client, settings, monkeypatch, super_admin, oauth_world):
    from settings_app import services

    def broken(**kwargs):
        raise RuntimeError("the save broke")

    monkeypatch.setattr(services, "smtp_oauth_client_save", broken)
    settings.DEBUG = True
    client.raise_request_exception = False
    client.force_login(super_admin)

    response = client.post(reverse("installation_oauth"), {**OAUTH_FORM, "oauth-client_secret": CLIENT_SECRET})

    page = response.content.decode()
    assert response.status_code == 500 and "the save broke" in page
    assert CLIENT_SECRET not in page


@pytest.mark.django_db
def test_an_error_report_from_disconnect_hides_the_refresh_token_it_held(
    client, settings, monkeypatch, oauth_row, super_admin
):
    from settings_app import services

    def broken(**kwargs):
        raise RuntimeError("the disconnect broke")

    oauth_row.connect()
    refresh_token = oauth_row.oauth_refresh_token()
    monkeypatch.setattr(services, "smtp_oauth_disconnect", broken)
    settings.DEBUG = True
    client.raise_request_exception = False
    client.force_login(super_admin)

    response = client.post(reverse("installation_oauth_disconnect"))

    page = response.content.decode()
    assert response.status_code == 500 and "the disconnect broke" in page and "sign_in" in page
    assert refresh_token not in page
