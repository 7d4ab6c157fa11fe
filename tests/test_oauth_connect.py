"""Connect account: out to the real local identity provider with PKCE and a one-time state, back to the fixed
callback, and every way a callback can be forged, replayed, late or foreign (refused, nothing stored)."""

import time

import pytest
from django.urls import reverse

from settings_app.models import Role, SettingsChange
from settings_app.oauth import connect
from tests.oauth_servers import CALLBACK, CLIENT_ID, MAILBOX, REDIRECT_URI, start_connect

pytestmark = pytest.mark.django_db(transaction=True)


def _stored(row):
    row.refresh_from_db()
    return row.oauth_refresh_sealed


def test_connect_account_sends_the_administrator_to_the_provider_with_pkce_and_the_fixed_redirect_url(
    client, super_admin, oauth_row, identity_provider
):
    client.force_login(super_admin)

    location, query = start_connect(client, redirect_uri="https://attacker.example.net/steal")

    assert location.startswith(f"{identity_provider.url}/authorize?")
    assert query["redirect_uri"] == REDIRECT_URI
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["client_id"] == CLIENT_ID and query["login_hint"] == MAILBOX
    assert len(query["state"]) >= 32
    assert "code_verifier" not in location


def test_the_whole_connect_flow_stores_the_sealed_refresh_token_and_says_who_connected_it(
    client, super_admin, oauth_row, identity_provider
):
    client.force_login(super_admin)
    _, query = start_connect(client)
    code = identity_provider.approve(query, MAILBOX)

    answer = client.get(CALLBACK, {"code": code, "state": query["state"]})

    assert answer.status_code == 302 and answer["Location"] == reverse("installation_options")
    oauth_row.refresh_from_db()
    assert oauth_row.oauth_account == MAILBOX and oauth_row.oauth_connected_by == super_admin
    refresh = oauth_row.oauth_refresh_token()
    assert refresh in identity_provider.authority.ledger.grants and refresh not in oauth_row.oauth_refresh_sealed
    page = client.get(reverse("installation_options")).content.decode()
    assert f"Connected as {MAILBOX}" in page and f"by {super_admin.username}" in page
    assert refresh not in page
    audit = SettingsChange.objects.filter(installation=oauth_row.installation).first()
    assert audit.summary == {
        "OAuth account": "connected",
        "Signed in as": MAILBOX,
        "Identity provider": "The installation's identity provider",
    }


def test_a_replayed_state_is_refused_and_changes_nothing(client, super_admin, oauth_row, identity_provider):
    client.force_login(super_admin)
    _, query = start_connect(client)
    code = identity_provider.approve(query, MAILBOX)
    assert client.get(CALLBACK, {"code": code, "state": query["state"]}).status_code == 302
    stored = _stored(oauth_row)

    again = client.get(CALLBACK, {"code": code, "state": query["state"]})

    assert again.status_code == 400
    assert "already used" in again.content.decode()
    assert _stored(oauth_row) == stored


@pytest.mark.parametrize("state", ["", "forged-state-value-that-was-never-issued-here"])
def test_a_missing_or_forged_state_is_refused_and_nothing_is_stored(
    client, super_admin, oauth_row, identity_provider, state
):
    client.force_login(super_admin)
    _, query = start_connect(client)
    code = identity_provider.approve(query, MAILBOX)

    answer = client.get(CALLBACK, {"code": code, "state": state})

    assert answer.status_code == 400 and "Nothing was stored" in answer.content.decode()
    assert _stored(oauth_row) == ""


def test_a_state_from_another_session_is_refused_even_for_another_super_administrator(
    client, super_admin, oauth_row, identity_provider, django_user_model
):
    from tests import factories

    client.force_login(super_admin)
    _, query = start_connect(client)
    code = identity_provider.approve(query, MAILBOX)
    other = factories.user("other-super")
    Role.objects.create(user=other, kind="super_admin")
    client.logout()
    client.force_login(other)

    answer = client.get(CALLBACK, {"code": code, "state": query["state"]})

    assert answer.status_code == 400
    assert _stored(oauth_row) == ""


def test_an_expired_state_is_refused(client, super_admin, oauth_row, identity_provider):
    client.force_login(super_admin)
    _, query = start_connect(client)
    code = identity_provider.approve(query, MAILBOX)
    session = client.session
    session[connect.SESSION_KEY][query["state"]]["until"] = time.time() - 1
    session.save()

    answer = client.get(CALLBACK, {"code": code, "state": query["state"]})

    assert answer.status_code == 400 and "expired" in answer.content.decode()
    assert _stored(oauth_row) == ""


def test_a_code_issued_for_another_scopes_sign_in_is_refused(
    client, super_admin, oauth_row, make_oauth_row, north, identity_provider
):
    district_row = make_oauth_row(north)
    client.force_login(super_admin)
    _, for_installation = start_connect(client)
    _, for_district = start_connect(client, reverse("district_oauth_connect", args=[north.slug]))
    code = identity_provider.approve(for_installation, MAILBOX)

    answer = client.get(CALLBACK, {"code": code, "state": for_district["state"]})

    assert answer.status_code == 400 and "invalid_grant" in answer.content.decode()
    assert _stored(district_row) == "" and _stored(oauth_row) == ""


def test_a_sign_in_for_a_district_the_user_no_longer_administers_stores_nothing(
    client, north_admin, north, make_oauth_row, identity_provider
):
    row = make_oauth_row(north)
    client.force_login(north_admin)
    _, query = start_connect(client, reverse("district_oauth_connect", args=[north.slug]))
    code = identity_provider.approve(query, MAILBOX)
    Role.objects.filter(user=north_admin).delete()

    answer = client.get(CALLBACK, {"code": code, "state": query["state"]})

    assert answer.status_code == 400 and "no longer change" in answer.content.decode()
    assert _stored(row) == ""


def test_settings_changed_during_the_sign_in_store_nothing(client, super_admin, oauth_row, identity_provider):
    client.force_login(super_admin)
    _, query = start_connect(client)
    code = identity_provider.approve(query, MAILBOX)
    oauth_row.host = "127.0.0.1"
    oauth_row.save()

    answer = client.get(CALLBACK, {"code": code, "state": query["state"]})

    assert answer.status_code == 400 and "changed while you signed in" in answer.content.decode()
    assert _stored(oauth_row) == ""


def test_the_provider_refuses_a_redirect_to_a_host_it_does_not_know(super_admin, client, oauth_row, identity_provider):
    client.force_login(super_admin)
    _, query = start_connect(client)
    with identity_provider.http() as http:
        answer = http.get(
            f"{identity_provider.url}/authorize", params={**query, "redirect_uri": "https://evil.example.net/cb"}
        )

    assert answer.status_code == 400 and "redirect" in answer.text.lower()


def test_a_denied_consent_is_refused_with_the_providers_error(client, super_admin, oauth_row, identity_provider):
    client.force_login(super_admin)
    _, query = start_connect(client)

    answer = client.get(CALLBACK, {"error": "access_denied", "state": query["state"]})

    assert answer.status_code == 400 and "access_denied" in answer.content.decode()
    assert _stored(oauth_row) == ""


def test_disconnect_forgets_the_account_revokes_it_at_the_provider_and_writes_an_audit_row(
    client, super_admin, oauth_row, identity_provider
):
    oauth_row.connect()
    refresh = oauth_row.oauth_refresh_token()
    client.force_login(super_admin)

    answer = client.post(reverse("installation_oauth_disconnect"))

    assert answer.status_code == 302
    assert identity_provider.authority.ledger.grants[refresh].revoked
    oauth_row.refresh_from_db()
    assert (oauth_row.oauth_refresh_sealed, oauth_row.oauth_account, oauth_row.oauth_connected_at) == ("", "", None)
    audit = SettingsChange.objects.filter(installation=oauth_row.installation).first()
    assert audit.summary == {"OAuth account": "disconnected", "Signed in as": MAILBOX}


def test_connecting_again_is_audited_as_a_reconnect(client, super_admin, oauth_row, identity_provider):
    oauth_row.connect()
    client.force_login(super_admin)
    _, query = start_connect(client)
    code = identity_provider.approve(query, MAILBOX)

    client.get(CALLBACK, {"code": code, "state": query["state"]})

    audit = SettingsChange.objects.filter(installation=oauth_row.installation).first()
    assert audit.summary["OAuth account"] == "reconnected"
