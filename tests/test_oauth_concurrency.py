"""Two workers refreshing the same sign-in at once: the row lock makes them take turns, each rotation is saved
before the next refresh reads it, and no refresh ever presents a refresh token the provider already retired."""

import threading

import pytest
from django.db import connections

from settings_app.oauth.tokens import fetch_access_token, oauth_app

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_workers_refreshing_at_once_both_get_a_token_and_the_last_rotation_is_kept(oauth_row, identity_provider):
    earlier = set(identity_provider.authority.ledger.grants)  # the provider is shared by the whole session
    oauth_row.connect()
    app = oauth_app(oauth_row, oauth_row.installation)
    start, results, errors = threading.Barrier(4), [], []

    def worker():
        start.wait()
        try:
            results.append(fetch_access_token(app)["access_token"])
        except Exception as exc:  # kept for the assertion below, which shows it
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == [] and len(results) == 4
    oauth_row.refresh_from_db()
    grants = identity_provider.authority.ledger.grants
    live = [token for token, grant in grants.items() if not grant.revoked and token not in earlier]
    assert live == [oauth_row.oauth_refresh_token()]  # the one stored is the one the provider still honours
    assert identity_provider.authority.ledger.requests["refresh_token"] == 4
