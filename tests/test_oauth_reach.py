"""Identity provider endpoints under the reach policy: HTTPS only; hosted installations reach only Microsoft's and
Google's endpoints on port 443; self-hosted ones what their networks allow, never a metadata service."""

import ipaddress

import pytest

from settings_app.mail.config import ReachPolicy
from settings_app.mail.reach import DestinationRefused, vet_https
from settings_app.oauth.connect import ConnectRefused, check_authorize_url
from settings_app.oauth.providers import PUBLIC_PROVIDER_HOSTS

HOSTED = ReachPolicy(hosted=True)
SELF_HOSTED = ReachPolicy(hosted=False, allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))


async def _vet(url: str, policy: ReachPolicy):
    return await vet_https(url, policy, seconds=2, public_hosts=PUBLIC_PROVIDER_HOSTS)


@pytest.mark.parametrize(
    "url",
    [
        "http://login.microsoftonline.com/common/oauth2/v2.0/token",  # not HTTPS
        "https://login.microsoftonline.com:8443/common/oauth2/v2.0/token",  # not 443
        "https://idp.district.example.org/token",  # not a known provider
        "https://127.0.0.1/token",
        "https://localhost:9100/token",
        "https://169.254.169.254/latest/meta-data/",
        "https:///token",
    ],
)
async def test_a_hosted_installation_refuses_every_endpoint_but_the_providers_own(url):
    with pytest.raises(DestinationRefused):
        await _vet(url, HOSTED)


@pytest.mark.parametrize(
    "url", ["http://localhost:9100/token", "https://169.254.169.254/token", "https://10.1.2.3/token"]
)
async def test_a_self_hosted_installation_needs_https_and_an_allowed_network(url):
    with pytest.raises(DestinationRefused):
        await _vet(url, SELF_HOSTED)


async def test_a_self_hosted_installation_reaches_its_own_provider_on_an_allowed_network():
    destination = await _vet("https://localhost:9100/token", SELF_HOSTED)
    assert destination.host == "localhost" and destination.port == 9100
    assert all(address.is_loopback for address in destination.addresses)


@pytest.mark.parametrize(
    ("url", "hosted", "refused"),
    [
        ("https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize", True, False),
        ("https://accounts.google.com/o/oauth2/v2/auth", True, False),
        ("https://idp.district.example.org/authorize", True, True),
        ("https://idp.district.example.org/authorize", False, False),
        ("http://idp.district.example.org/authorize", False, True),
        ("javascript:alert(1)", False, True),
    ],
)
def test_nobody_is_sent_to_a_sign_in_page_outside_the_policy(url, hosted, refused):
    if refused:
        with pytest.raises(ConnectRefused):
            check_authorize_url(url, hosted=hosted)
    else:
        check_authorize_url(url, hosted=hosted)


@pytest.mark.django_db
def test_a_new_identity_provider_url_forgets_the_secrets_kept_for_the_old_one(
    oauth_row, identity_provider, super_admin
):
    """The client secret and the account's sign-in were given to one provider: they never go to another."""
    from settings_app import services
    from settings_app.models import SettingsChange

    oauth_row.connect()
    installation = oauth_row.installation
    identity_provider.authority.ledger.requests.clear()

    services.installation_update(
        installation=installation, values={"oauth_issuer": "https://idp.other.example.org"}, acting_user=super_admin
    )

    oauth_row.refresh_from_db()
    assert oauth_row.oauth_client_secret_sealed == "" and oauth_row.oauth_refresh_sealed == ""
    assert not oauth_row.oauth_connected
    audit = SettingsChange.objects.filter(installation=installation).values_list("summary", flat=True)
    assert {
        "OAuth account": "disconnected (identity provider changed)",
        "Client secret": "removed (identity provider changed)",
    } in list(audit)
    assert identity_provider.authority.ledger.requests == {}
