"""Notice delivery signing in with OAuth 2.0: a thousand notices across an access token's end, and a sign-in
revoked in the middle of a run (pause with its cause, never a loop against the provider; reconnect resumes)."""

import time

import pytest
from django.urls import reverse

from settings_app.delivery import worker
from settings_app.models import Notice, NoticeStatus, SmtpSettings
from tests import factories
from tests.oauth_servers import MAILBOX
from tests.test_delivery import overdue, queue_overdue


@pytest.fixture
def school(north):
    return north.schools.get()


@pytest.fixture
def annex(north, school, north_staff):
    """A second school of the district: its notices are queued for the second run."""
    return factories.school(north, "North Annex")


def _queue(school, staff, numbers):
    for i in numbers:
        overdue(school, f"Patron {i}", f"p{i}@example.org", "Dune")
    queue_overdue(school, staff)


@pytest.mark.django_db
def test_a_thousand_notices_go_out_across_an_access_tokens_end_with_one_refresh_and_none_lost(
    school, annex, oauth_row, identity_provider, xoauth2_server, north_staff
):
    """Tokens live 2 s here: the second run finds the cached one too old and asks for a new one before connecting."""
    authority = identity_provider.authority
    authority.access_lifetime = 2
    oauth_row.connect()
    SmtpSettings.objects.filter(pk=oauth_row.pk).update(max_per_hour=5000)
    authority.ledger.requests.clear()
    _queue(school, north_staff, range(500))
    worker.deliver(oauth_row.pk)
    time.sleep(2.1)  # the access token of the first run ends
    _queue(annex, north_staff, range(500, 1000))
    worker.deliver(oauth_row.pk)

    assert Notice.objects.filter(status=NoticeStatus.SENT).count() == 1000
    ids = [m.message["Message-ID"] for m in xoauth2_server.recorded.messages]
    assert len(ids) == len(set(ids)) == 1000
    assert authority.ledger.requests == {"refresh_token": 2}  # the first token, then one when it ended
    assert [(a.login, a.accepted) for a in xoauth2_server.recorded.logins] == [(MAILBOX, True)] * 2


@pytest.mark.django_db
def test_a_sign_in_revoked_between_runs_pauses_delivery_with_its_cause_and_a_reconnect_resumes_it(
    client, school, annex, oauth_row, identity_provider, xoauth2_server, north_staff, super_admin
):
    oauth_row.connect()
    authority = identity_provider.authority
    authority.ledger.requests.clear()
    _queue(school, north_staff, range(100))
    worker.deliver(oauth_row.pk)
    authority.revoke_grants(MAILBOX)  # the account's consent is withdrawn at the provider
    _queue(annex, north_staff, range(100, 300))
    worker.deliver(oauth_row.pk)  # the cached token is refused (535), the refresh answers invalid_grant
    worker.deliver(oauth_row.pk)  # paused: neither the provider nor the server is asked again

    oauth_row.refresh_from_db()
    assert oauth_row.paused_at is not None and oauth_row.pause_category == "oauth_revoked"
    assert Notice.objects.filter(status=NoticeStatus.SENT).count() == 100
    assert Notice.objects.filter(status=NoticeStatus.QUEUED, attempts=0).count() == 200
    assert authority.ledger.requests == {"refresh_token": 1}  # the refused refresh issued nothing
    assert [a.accepted for a in xoauth2_server.recorded.logins] == [True, False]
    client.force_login(super_admin)
    page = client.get(reverse("installation_options")).content.decode()
    assert "Sending is paused" in page and "sign-in has expired or was revoked" in page

    oauth_row.connect()
    data = {
        "smtp-host": oauth_row.host,
        "smtp-port": str(oauth_row.port),
        "smtp-transport": oauth_row.transport,
        "smtp-username": oauth_row.username,
        "smtp-max_per_hour": "500",
    }
    html = client.post(reverse("installation_test_server"), data, HTTP_X_REQUESTED_WITH="fetch").content.decode()
    assert "Sending resumed" in html
    worker.deliver(oauth_row.pk)
    assert Notice.objects.filter(status=NoticeStatus.SENT).count() == 300


def test_an_unreadable_client_secret_pauses_with_the_sign_in_cause_and_connects_nowhere(
    oauth_row, school, north_staff, identity_provider, xoauth2_server
):
    oauth_row.connect()
    SmtpSettings.objects.filter(pk=oauth_row.pk).update(oauth_client_secret_sealed="not-a-token")
    identity_provider.authority.ledger.requests.clear()
    _queue(school, north_staff, range(3))

    worker.deliver(oauth_row.pk)

    oauth_row.refresh_from_db()
    assert oauth_row.pause_category == "oauth_secret_unreadable"  # not "enter the password"
    assert identity_provider.authority.ledger.requests == {} and xoauth2_server.recorded.ehlo_names == []
    assert Notice.objects.filter(status=NoticeStatus.QUEUED).count() == 3


def test_test_server_with_other_values_than_the_oauth_settings_says_what_to_do_and_connects_nowhere(
    client, oauth_row, super_admin, identity_provider, starttls_server
):
    oauth_row.connect()
    identity_provider.authority.ledger.requests.clear()
    client.force_login(super_admin)
    data = {
        "smtp-host": "localhost",
        "smtp-port": str(starttls_server.port),
        "smtp-transport": "tls",
        "smtp-username": oauth_row.username,
        "smtp-max_per_hour": "500",
    }

    html = client.post(reverse("installation_test_server"), data, HTTP_X_REQUESTED_WITH="fetch").content.decode()

    assert "whose account signs in with OAuth 2.0: save them and connect the account again" in html
    assert identity_provider.authority.ledger.requests == {} and starttls_server.recorded.ehlo_names == []


def test_an_unexpected_failure_before_the_session_opens_gives_the_batch_back_at_once(
    oauth_row, school, north_staff, monkeypatch, xoauth2_server
):
    """Nothing went out: the notices are due again now, not counted as possible duplicates when a lease ends."""
    from django.db import OperationalError

    from settings_app.oauth import tokens

    def database_gone(app):
        raise OperationalError("the connection to the database was lost")

    oauth_row.connect()
    tokens.CACHE.clear()
    monkeypatch.setattr(tokens, "fetch_access_token", database_gone)
    _queue(school, north_staff, range(3))

    with pytest.raises(OperationalError):
        worker.deliver(oauth_row.pk)

    rows = list(Notice.objects.values_list("status", "lease_token", "possible_duplicates"))
    assert rows == [(NoticeStatus.QUEUED, "", 0)] * 3
    assert xoauth2_server.recorded.logins == []
