"""Test Server and Test email with OAuth 2.0: a token from the real local identity provider, AUTH XOAUTH2 on a real
SMTP server that checks it, and each way the sign-in can fail as a verdict with the provider's error code."""

import pytest
from asgiref.sync import async_to_sync

from settings_app import selectors
from settings_app.mail import transport
from settings_app.mail.diagnosis import Category, StepKind
from settings_app.models import SettingsChange
from tests.oauth_servers import CLIENT_SECRET, MAILBOX

pytestmark = pytest.mark.django_db(transaction=True)


def _test_server(row):
    row.refresh_from_db()
    config = selectors.stored_smtp_config(row, row.installation)
    return async_to_sync(transport.test_server)(config)


def test_test_server_signs_in_with_xoauth2_using_a_token_of_the_identity_provider(oauth_row, xoauth2_server):
    oauth_row.connect()

    diagnosis = _test_server(oauth_row)

    assert diagnosis.category is Category.OK, "\n".join(diagnosis.transcript)
    assert diagnosis.auth_mechanism == "XOAUTH2"
    assert [s.kind for s in diagnosis.steps][:2] == [StepKind.TOKEN, StepKind.RESOLVE]
    assert diagnosis.steps[0].label == "Get access token" and diagnosis.steps[0].elapsed_ms is not None
    assert [(a.mechanism, a.login, a.accepted) for a in xoauth2_server.recorded.logins] == [("XOAUTH2", MAILBOX, True)]


def test_a_revoked_sign_in_is_a_verdict_with_the_providers_code_and_nothing_reaches_the_mail_server(
    oauth_row, identity_provider, xoauth2_server
):
    oauth_row.connect()
    identity_provider.authority.revoke_grants(MAILBOX)

    diagnosis = _test_server(oauth_row)

    assert diagnosis.category is Category.OAUTH_REVOKED
    assert "invalid_grant" in diagnosis.detail
    token_step = diagnosis.steps[0]
    assert (token_step.kind, token_step.ok, token_step.detail) == (StepKind.TOKEN, False, "invalid_grant")
    assert len(diagnosis.steps) == 1
    assert xoauth2_server.recorded.ehlo_names == []
    assert diagnosis.advice.configuration and "Connect account" in diagnosis.fix


def test_a_token_the_mail_server_refuses_is_replaced_by_a_fresh_one_once(oauth_row, identity_provider, xoauth2_server):
    oauth_row.connect()
    assert _test_server(oauth_row).ok
    identity_provider.authority.revoke_access_tokens()  # the cached token dies, the sign-in lives
    xoauth2_server.recorded.clear()

    diagnosis = _test_server(oauth_row)

    assert diagnosis.ok, diagnosis.detail
    assert [a.accepted for a in xoauth2_server.recorded.logins] == [False, True]
    kinds = [(s.kind, s.ok) for s in diagnosis.steps if s.kind in (StepKind.TOKEN, StepKind.AUTH)]
    assert kinds == [(StepKind.TOKEN, True), (StepKind.AUTH, False), (StepKind.TOKEN, True), (StepKind.AUTH, True)]


def test_a_token_refused_even_when_fresh_is_the_token_rejected_verdict(oauth_row, identity_provider, xoauth2_server):
    oauth_row.connect("someone-else@north.example.org")  # consented as another account than the user ID

    diagnosis = _test_server(oauth_row)

    assert diagnosis.category is Category.OAUTH_TOKEN_REJECTED
    assert [a.accepted for a in xoauth2_server.recorded.logins] == [False, False]
    assert diagnosis.reply.startswith("535")


def test_each_refresh_rotates_the_refresh_token_and_the_new_one_is_stored_sealed(oauth_row, identity_provider):
    oauth_row.connect()
    first = oauth_row.oauth_refresh_token()

    assert _test_server(oauth_row).ok
    oauth_row.refresh_from_db()
    second = oauth_row.oauth_refresh_token()

    assert second != first
    assert first not in oauth_row.oauth_refresh_sealed and second not in oauth_row.oauth_refresh_sealed
    assert identity_provider.authority.ledger.grants[first].revoked
    assert not identity_provider.authority.ledger.grants[second].revoked


def test_the_access_token_is_cached_in_memory_so_a_second_test_asks_the_provider_nothing(oauth_row, identity_provider):
    oauth_row.connect()
    identity_provider.authority.ledger.requests.clear()

    assert _test_server(oauth_row).ok
    assert _test_server(oauth_row).ok

    assert identity_provider.authority.ledger.requests == {"refresh_token": 1}


def test_no_form_of_any_oauth_secret_appears_in_the_diagnosis(oauth_row, identity_provider):
    tokens = identity_provider.consent(MAILBOX)
    oauth_row.connect()
    config = selectors.stored_smtp_config(oauth_row, oauth_row.installation)

    diagnosis = async_to_sync(transport.test_server)(config)
    access = async_to_sync(config.oauth.access_token)()

    from aiosmtplib.auth import auth_xoauth2_encode

    oauth_row.refresh_from_db()
    shown = repr(diagnosis) + repr(config)
    secrets = [access, auth_xoauth2_encode(MAILBOX, access).decode(), oauth_row.oauth_refresh_token(), CLIENT_SECRET]
    secrets += [tokens["refresh_token"], tokens["access_token"]]
    assert diagnosis.ok
    assert "C: AUTH XOAUTH2 ********" in diagnosis.transcript
    for secret in secrets:
        assert secret not in shown


def test_settings_without_a_connected_account_ask_for_one_before_any_connection(oauth_row, xoauth2_server):
    diagnosis = _test_server(oauth_row)

    assert diagnosis.category is Category.OAUTH_NOT_CONNECTED
    assert xoauth2_server.recorded.ehlo_names == []


def test_a_wrong_client_secret_is_the_app_registration_verdict(oauth_row, super_admin):
    from settings_app import services

    oauth_row.connect()
    values = {f: getattr(oauth_row, f) for f in services.OAUTH_FIELDS}
    services.smtp_oauth_client_save(
        scope=oauth_row.installation, values=values, client_secret="not-the-secret", acting_user=super_admin
    )

    diagnosis = _test_server(oauth_row)

    assert diagnosis.category is Category.OAUTH_CLIENT
    assert "invalid_client" in diagnosis.detail


def test_app_only_sign_in_uses_client_credentials_and_needs_no_connected_account(
    oauth_row, identity_provider, super_admin, xoauth2_server
):
    from settings_app import services

    values = {f: getattr(oauth_row, f) for f in services.OAUTH_FIELDS} | {"oauth_flow": "app_only"}
    services.smtp_oauth_client_save(
        scope=oauth_row.installation, values=values, client_secret="", acting_user=super_admin
    )

    diagnosis = _test_server(oauth_row)

    assert diagnosis.ok, diagnosis.detail
    assert identity_provider.authority.ledger.requests == {"client_credentials": 1}
    assert xoauth2_server.recorded.logins[0].accepted


def test_a_hosted_installation_never_sends_a_token_request_to_an_unknown_identity_provider(
    oauth_row, identity_provider, xoauth2_server
):
    oauth_row.connect()
    installation = oauth_row.installation
    installation.hosting_mode = "hosted"
    installation.save()
    identity_provider.authority.ledger.requests.clear()

    diagnosis = _test_server(oauth_row)

    assert diagnosis.category is Category.POLICY
    assert "not a known identity provider" in diagnosis.detail
    assert identity_provider.authority.ledger.requests == {}
    assert xoauth2_server.recorded.ehlo_names == []


def test_moving_the_settings_to_another_server_disconnects_and_no_token_reaches_it(
    oauth_row, identity_provider, super_admin, starttls_server
):
    from settings_app import services

    oauth_row.connect()
    values = {f: getattr(oauth_row, f) for f in services.SETTINGS_FIELDS} | {"port": starttls_server.port}
    services.smtp_settings_save(scope=oauth_row.installation, values=values, password="", acting_user=super_admin)
    oauth_row.refresh_from_db()

    diagnosis = _test_server(oauth_row)

    assert oauth_row.oauth_refresh_sealed == "" and oauth_row.oauth_account == ""
    assert oauth_row.oauth_client_secret() == CLIENT_SECRET  # the app's secret stays, sealed to the new destination
    assert diagnosis.category is Category.OAUTH_NOT_CONNECTED
    assert starttls_server.recorded.sasl_commands == [] and starttls_server.recorded.ehlo_names == []


def test_moving_app_only_settings_to_another_server_clears_the_secret_and_no_token_reaches_it(
    oauth_row, identity_provider, super_admin, starttls_server
):
    """With app-only sign-in the client secret alone gets tokens: like a password, it never follows a move."""
    from settings_app import services

    values = {f: getattr(oauth_row, f) for f in services.OAUTH_FIELDS} | {"oauth_flow": "app_only"}
    services.smtp_oauth_client_save(
        scope=oauth_row.installation, values=values, client_secret="", acting_user=super_admin
    )
    values = {f: getattr(oauth_row, f) for f in services.SETTINGS_FIELDS} | {"port": starttls_server.port}
    _, cleared = services.smtp_settings_save(
        scope=oauth_row.installation, values=values, password="", acting_user=super_admin
    )
    identity_provider.authority.ledger.requests.clear()

    diagnosis = _test_server(oauth_row)

    assert cleared == {services.CLIENT_SECRET} and oauth_row.oauth_client_secret_sealed == ""
    assert SettingsChange.objects.first().summary["Client secret"] == "removed (server or user ID changed)"
    assert not diagnosis.ok and identity_provider.authority.ledger.requests == {}
    assert starttls_server.recorded.sasl_commands == [] and starttls_server.recorded.ehlo_names == []


def test_an_unreadable_ca_bundle_is_a_verdict_wherever_the_provider_is_called_never_a_crash(
    oauth_row, xoauth2_server, identity_provider
):
    from settings_app.mail.config import TokenUnavailable
    from settings_app.models import Installation
    from settings_app.oauth import tokens

    oauth_row.connect()
    identity_provider.authority.ledger.requests.clear()
    Installation.objects.filter(pk=oauth_row.installation_id).update(ca_bundle="-----BEGIN CERTIFICATE-----\nx\n")
    oauth_row.refresh_from_db()
    app = tokens.oauth_app(oauth_row, oauth_row.installation)

    assert _test_server(oauth_row).category is Category.CA_BUNDLE_INVALID
    for call in (lambda: tokens.fetch_access_token(app), lambda: tokens.revoke(app, oauth_row.oauth_refresh_token())):
        with pytest.raises(TokenUnavailable, match="no readable certificate"):
            call()
    assert identity_provider.authority.ledger.requests == {} and xoauth2_server.recorded.ehlo_names == []


def test_the_smtp_test_command_signs_in_with_oauth_and_prints_no_token(oauth_row, xoauth2_server, capsys):
    import io

    from django.core.management import call_command

    oauth_row.connect()
    out = io.StringIO()

    call_command("smtp_test", scope="installation", stdout=out)

    printed = out.getvalue()
    oauth_row.refresh_from_db()
    assert "Get access token" in printed and "XOAUTH2" in printed and "The mail server works" in printed
    assert oauth_row.oauth_refresh_token() not in printed
    assert xoauth2_server.recorded.logins[-1].accepted


def test_test_email_signs_in_with_xoauth2_and_the_message_arrives_as_the_connected_account(
    client, oauth_row, xoauth2_server, super_admin
):
    from django.urls import reverse

    oauth_row.connect()
    client.force_login(super_admin)
    data = {
        "smtp-host": oauth_row.host,
        "smtp-port": str(oauth_row.port),
        "smtp-transport": oauth_row.transport,
        "smtp-username": oauth_row.username,
        "smtp-from_name": "North Library",
        "smtp-from_email": MAILBOX,
        "smtp-max_per_hour": "500",
        "test-send_to": "patron@example.org",
    }

    html = client.post(reverse("installation_test_email"), data, HTTP_X_REQUESTED_WITH="fetch").content.decode()

    assert "Get access token" in html and "XOAUTH2" in html
    received = xoauth2_server.recorded.messages[-1]
    assert (received.login, received.rcpt_tos, received.tls) == (MAILBOX, ("patron@example.org",), True)


def test_a_google_service_account_acts_for_the_mailbox_with_a_signed_assertion(
    oauth_row, identity_provider, super_admin, xoauth2_server
):
    import json

    from authlib.oauth2.rfc7523 import JWTBearerGrant

    from settings_app import services

    key = identity_provider.authority.register_service_account("mailer@district.iam.gserviceaccount.com")
    values = {f: getattr(oauth_row, f) for f in services.OAUTH_FIELDS}
    values |= {"oauth_flow": "service_account", "oauth_client_id": key["client_email"]}
    services.smtp_oauth_client_save(
        scope=oauth_row.installation, values=values, client_secret=json.dumps(key), acting_user=super_admin
    )

    diagnosis = _test_server(oauth_row)

    assert diagnosis.ok, diagnosis.detail
    assert identity_provider.authority.ledger.requests == {JWTBearerGrant.GRANT_TYPE: 1}
    assert [(a.login, a.accepted) for a in xoauth2_server.recorded.logins] == [(MAILBOX, True)]
    assert key["private_key"] not in repr(diagnosis)


def test_a_slow_provider_of_app_only_sign_in_holds_up_no_other_database_work(
    oauth_row, identity_provider, super_admin, monkeypatch
):
    """The token request waits on a thread of its own; the worker's database thread goes on meanwhile."""
    import asyncio
    import time

    from asgiref.sync import sync_to_async

    from settings_app import services
    from settings_app.models import SmtpSettings
    from settings_app.oauth import tokens

    values = {f: getattr(oauth_row, f) for f in services.OAUTH_FIELDS} | {"oauth_flow": "app_only"}
    services.smtp_oauth_client_save(
        scope=oauth_row.installation, values=values, client_secret="", acting_user=super_admin
    )
    oauth_row.refresh_from_db()
    source = tokens.StoredTokens(tokens.oauth_app(oauth_row, oauth_row.installation))
    real = tokens.call_token_endpoint

    def slow_provider(app, call):
        time.sleep(0.5)
        return real(app, call)

    monkeypatch.setattr(tokens, "call_token_endpoint", slow_provider)
    tokens.CACHE.clear()
    finished = []

    async def token_and_bookkeeping():
        async def token():
            await source.access_token()
            finished.append("token")

        async def bookkeeping():
            await asyncio.sleep(0.1)
            await sync_to_async(SmtpSettings.objects.count)()
            finished.append("database")

        await asyncio.gather(token(), bookkeeping())

    async_to_sync(token_and_bookkeeping)()

    assert finished == ["database", "token"]
    assert identity_provider.authority.ledger.requests == {"client_credentials": 1}
