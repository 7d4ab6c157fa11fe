"""Test Server and Test email in a real Chromium: results in place, the typed password kept."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from settings_app.models import SmtpTestRecord
from tests.smtp_servers import EHLO_NAME, PASSWORD, USERNAME

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def type_settings(page, server):
    page.get_by_label("SMTP (mail) server address").fill("localhost")
    page.get_by_label("Transport protocol").select_option(label="TLS (STARTTLS)")
    page.get_by_role("spinbutton", name="Port").fill(str(server.port))
    page.get_by_label("Authentication user ID").fill(USERNAME)
    page.get_by_label("Authentication password").fill(PASSWORD)
    page.get_by_label("From/Reply-To display name").fill("Consortium Libraries")
    page.get_by_label("From/Reply-To email").fill("library@consortium.example.org")


def test_test_server_shows_the_result_in_place_and_keeps_the_typed_password(
    page, login, consortium, super_admin, starttls_server
):
    login(super_admin)
    type_settings(page, starttls_server)
    page.get_by_role("button", name="Test Server").click()

    result = page.locator("#test-result")
    expect(result.get_by_role("heading", name="The mail server works")).to_be_visible(timeout=10_000)
    expect(result.get_by_role("row", name="STARTTLS ✓ OK")).to_be_visible()
    expect(page.get_by_label("Authentication password")).to_have_value(PASSWORD)
    assert PASSWORD not in result.inner_html()
    assert starttls_server.recorded.sasl_commands == ["PLAIN"]
    page.screenshot(path=Path(__file__).resolve().parent.parent / "docs/screenshots/test-server.png", full_page=True)


def test_test_email_arrives_with_the_right_sender_and_ehlo_name(page, login, consortium, super_admin, starttls_server):
    login(super_admin)
    type_settings(page, starttls_server)
    page.get_by_label("Send the test email to").fill("patron@example.org")
    page.get_by_role("button", name="Test email").click()

    expect(page.locator("#test-result")).to_contain_text("queue id", timeout=10_000)
    (received,) = starttls_server.recorded.messages
    message = received.message
    assert message["From"] == "Consortium Libraries <library@consortium.example.org>"
    assert message["Reply-To"] == "Consortium Libraries <library@consortium.example.org>"
    assert received.ehlo_name == EHLO_NAME
    assert received.tls
    assert received.rcpt_tos == ("patron@example.org",)
    expect(page.get_by_label("Authentication password")).to_have_value(PASSWORD)


def test_a_failing_server_explains_the_cause_and_fix(page, login, consortium, super_admin, gmail_server):
    login(super_admin)
    type_settings(page, gmail_server)
    page.get_by_role("button", name="Test Server").click()

    result = page.locator("#test-result")
    expect(result).to_contain_text("app password", timeout=10_000)
    expect(result).to_contain_text("What to do")
    assert SmtpTestRecord.objects.get().category == "gmail_app_password"
