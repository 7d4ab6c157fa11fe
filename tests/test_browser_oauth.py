"""Sign in with OAuth 2.0 in a real Chromium: out to the local identity provider, consent, back, connected, tested.

Saves the README tour's screenshots of the Sign-in card (docs/screenshots/oauth-*.png).
"""

import pytest
from playwright.sync_api import expect

from tests import factories
from tests.oauth_servers import CLIENT_ID, CLIENT_SECRET, MAILBOX
from tests.test_browser_flows import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    """The local identity provider's certificate comes from the test CA, which this Chromium does not know."""
    return {**browser_context_args, "ignore_https_errors": True}


def test_super_admin_signs_the_account_in_with_oauth_and_test_server_uses_it(
    page, login, live_server, settings, consortium, super_admin, identity_provider, xoauth2_server
):
    callback = f"{live_server.url}/oauth/callback/"
    settings.OAUTH_REDIRECT_URL = callback
    identity_provider.authority.register(CLIENT_ID, CLIENT_SECRET, callback)
    consortium.oauth_issuer = identity_provider.url
    consortium.save()
    factories.smtp_settings(
        installation=consortium, host="localhost", port=xoauth2_server.port, transport="tls", username=MAILBOX
    )
    login(super_admin)

    card = page.locator("#oauth")
    card.get_by_label("Sign in with Microsoft 365 / Google (OAuth 2.0)").check()
    card.get_by_label("Identity provider").select_option(label="The installation's identity provider")
    card.get_by_label("Client ID").fill(CLIENT_ID)
    card.locator("#id_oauth-client_secret").fill(CLIENT_SECRET)
    expect(card.get_by_label("Redirect URL to register at the provider")).to_have_value(callback)
    card.get_by_role("button", name="Save sign-in settings").click()
    expect(page.get_by_text("Sign-in settings saved.")).to_be_visible()
    expect(page.locator("#oauth-status")).to_contain_text("No account connected.")

    page.get_by_role("button", name="Connect account").click()
    expect(page.get_by_role("heading", name="Local identity provider")).to_be_visible()
    expect(page.get_by_label("Account")).to_have_value(MAILBOX)
    page.get_by_role("button", name="Allow").click()

    expect(page.get_by_text(f"Connected as {MAILBOX}.", exact=True)).to_be_visible()
    expect(page.locator("#oauth-status")).to_contain_text(f"Connected as {MAILBOX} on ")
    expect(page.locator("#oauth-status")).to_contain_text(f"by {super_admin.username}")
    page.set_viewport_size({"width": 1200, "height": 900})
    card.screenshot(path=SCREENSHOTS / "oauth-connected.png")

    page.get_by_role("button", name="Test Server").click()
    result = page.locator("#test-result")
    expect(result).to_contain_text("The mail server works")
    expect(result).to_contain_text("Get access token")
    assert xoauth2_server.recorded.logins[-1].accepted
    assert CLIENT_SECRET not in page.content()


def test_the_redirect_url_is_copied_with_one_press_and_the_copy_is_announced(
    page, login, live_server, settings, consortium, super_admin
):
    settings.OAUTH_REDIRECT_URL = "https://mail.example.org/oauth/callback/"
    factories.smtp_settings(installation=consortium, host="smtp.example.org", username=MAILBOX)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    login(super_admin)

    card = page.locator("#oauth")
    field = card.get_by_label("Redirect URL to register at the provider")
    expect(field).to_have_value(settings.OAUTH_REDIRECT_URL)
    expect(field).to_have_attribute("readonly", "")
    status = card.get_by_role("status")
    expect(status).to_have_text("")
    card.get_by_role("button", name="Copy").click()

    expect(status).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == settings.OAUTH_REDIRECT_URL


def test_without_javascript_the_redirect_url_is_a_read_only_field_and_no_copy_button_shows(
    browser, live_server, settings, consortium, super_admin
):
    settings.OAUTH_REDIRECT_URL = "https://mail.example.org/oauth/callback/"
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(super_admin.username)
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Log in").click()

    card = page.locator("#oauth")
    field = card.get_by_label("Redirect URL to register at the provider")
    expect(field).to_have_value(settings.OAUTH_REDIRECT_URL)
    expect(field).not_to_be_editable()
    expect(card.get_by_role("button", name="Copy")).to_be_hidden()
    context.close()
