"""Every administrator's flow in a real Chromium, as a new user would go through it.

The tests save the screenshots of the README's tour (docs/screenshots/); the staff flow is in test_browser_notices.py.
"""

from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from settings_app.mail import detect
from settings_app.mail.config import Transport
from settings_app.mail.diagnosis import ADVICE, Category
from settings_app.models import MailSource, SmtpSettings
from tests import factories
from tests.smtp_servers import PASSWORD, USERNAME

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
SENDER = "Consortium Libraries <library@consortium.example.org>"


def screenshot(page, name, width=1200):
    page.set_viewport_size({"width": width, "height": 900})
    page.screenshot(path=SCREENSHOTS / name, full_page=True)


def consortium_server(installation, server, **fields):
    return factories.smtp_settings(
        installation=installation,
        host="localhost",
        port=server.port,
        transport="tls",
        username=USERNAME,
        password=PASSWORD,
        from_name="Consortium Libraries",
        from_email="library@consortium.example.org",
        **fields,
    )


def test_super_admin_picks_a_preset_tests_sends_a_test_email_and_saves(
    page, login, consortium, north, super_admin, starttls_server
):
    login(super_admin)
    page.get_by_label("Known provider").select_option(label="Gmail / Google Workspace (TLS, 587)")
    expect(page.get_by_label("SMTP (mail) server address")).to_have_value("smtp.gmail.com")
    expect(page.get_by_label("Transport protocol")).to_have_value("tls")
    expect(page.get_by_role("spinbutton", name="Port")).to_have_value("587")
    expect(page.locator("#preset-caveat")).to_contain_text("app password")
    page.get_by_label("Authentication user ID").fill(USERNAME)
    page.get_by_label("Authentication password").fill(PASSWORD)
    page.get_by_label("From/Reply-To display name").fill("Consortium Libraries")
    page.get_by_label("From/Reply-To email").fill("library@consortium.example.org")
    screenshot(page, "preset.png")

    # The provider cannot be reached from the tests: a local server with the same transport stands in for it.
    page.get_by_label("SMTP (mail) server address").fill("localhost")
    page.get_by_role("spinbutton", name="Port").fill(str(starttls_server.port))
    page.get_by_role("button", name="Test Server").click()
    result = page.locator("#test-result")
    expect(result.get_by_role("heading", name="The mail server works")).to_be_visible(timeout=10_000)

    page.get_by_label("Send the test email to").fill("patron@example.org")
    page.get_by_role("button", name="Test email").click()
    expect(result).to_contain_text("queue id", timeout=10_000)
    (received,) = starttls_server.recorded.messages
    assert (received.message["From"], received.message["Reply-To"]) == (SENDER, SENDER)
    assert received.rcpt_tos == ("patron@example.org",)
    expect(page.get_by_label("Authentication password")).to_have_value(PASSWORD)
    screenshot(page, "test-email.png")

    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("SMTP settings saved.")).to_be_visible()
    card = page.locator("section", has=page.get_by_role("heading", name="SMTP settings"))
    expect(card.locator(".card-head .badge")).to_have_text("Working")
    row = SmtpSettings.objects.get(installation=consortium)
    assert (row.host, row.port, row.transport, row.password()) == ("localhost", starttls_server.port, "tls", PASSWORD)
    districts = page.get_by_role("region", name="Districts")
    expect(districts.get_by_role("row", name="North")).to_contain_text("Using the consortium server")


def test_district_admin_switches_to_their_own_server_auto_detects_tests_and_saves(
    page, login, monkeypatch, consortium, north, north_admin, starttls_server, implicit_tls_server, plain_server
):
    consortium_server(consortium, starttls_server, last_test_ok=True)
    monkeypatch.setattr(
        detect,
        "CANDIDATES",
        (
            (implicit_tls_server.port, Transport.SSL),
            (starttls_server.port, Transport.TLS),
            (plain_server.port, Transport.NONE),
        ),
    )
    login(north_admin)
    head = page.locator(".card-head")
    expect(head).to_contain_text("Using the consortium server")
    expect(head).to_contain_text("Working")
    screenshot(page, "district-consortium.png")

    page.get_by_label("Use this district's own mail server").check()
    page.get_by_label("SMTP (mail) server address").fill("localhost")
    page.get_by_role("button", name="Auto-detect port and transport").click()
    found = page.locator("#detect-result")
    expect(found).to_contain_text("Found: SSL (implicit TLS)", timeout=10_000)
    expect(page.get_by_role("spinbutton", name="Port")).to_have_value(str(implicit_tls_server.port))
    expect(page.get_by_label("Transport protocol")).to_have_value("ssl")
    page.get_by_label("Authentication user ID").fill(USERNAME)
    page.get_by_label("Authentication password").fill(PASSWORD)
    screenshot(page, "auto-detect.png")

    page.get_by_role("button", name="Test Server").click()
    expect(page.locator("#test-result")).to_contain_text("The mail server works", timeout=10_000)
    expect(page.get_by_label("Authentication password")).to_have_value(PASSWORD)
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.get_by_text("This district is using this district's own server.")).to_be_visible()
    expect(head).to_contain_text("Working")
    north.refresh_from_db()
    assert north.mail_source == MailSource.OWN
    row = SmtpSettings.objects.get(district=north)
    assert (row.port, row.transport, row.password()) == (implicit_tls_server.port, "ssl", PASSWORD)
    assert implicit_tls_server.recorded.sasl_commands == ["PLAIN"]
    screenshot(page, "mobile-district.png", width=375)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


def test_a_paused_configuration_shows_its_cause_and_resumes_after_a_good_test(
    page, login, consortium, north, super_admin, starttls_server
):
    row = consortium_server(
        consortium,
        starttls_server,
        last_test_ok=True,
        paused_at=timezone.now(),
        pause_category=Category.AUTH_FAILED,
        pause_detail="535 5.7.8 Error: authentication failed",
    )
    login(super_admin)
    card = page.locator("section", has=page.get_by_role("heading", name="SMTP settings"))
    expect(card.locator(".card-head .badge")).to_have_text("Paused")
    cause = page.locator("#pause-cause")
    expect(cause).to_contain_text(str(ADVICE[Category.AUTH_FAILED].title))
    expect(cause).to_contain_text("535 5.7.8 Error: authentication failed")
    expect(cause).to_contain_text("Press Test Server to resume")
    expect(page.get_by_role("region", name="Districts").get_by_role("row", name="North")).to_contain_text("Paused")
    screenshot(page, "paused.png")

    page.get_by_role("button", name="Test Server").click()
    expect(page.locator("#test-result")).to_contain_text("The mail server works", timeout=10_000)
    page.reload()
    expect(card.locator(".card-head .badge")).to_have_text("Working")
    expect(cause).to_have_count(0)
    row.refresh_from_db()
    assert row.paused_at is None


def test_a_district_administrator_cannot_reach_the_other_district(page, login, live_server, north, south, north_admin):
    factories.smtp_settings(district=south, host="smtp.south.example.org")
    login(north_admin)
    expect(page.get_by_role("navigation", name="Main")).not_to_contain_text("South")
    for path in ("/setup/districts/south/options/", "/districts/south/delivery/"):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 404
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        assert "smtp.south.example.org" not in page.content()
