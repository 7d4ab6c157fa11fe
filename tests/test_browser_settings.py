"""The settings pages in a real Chromium, as the administrators use them."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from settings_app.models import MailSource, SmtpSettings
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PASSWORD = "Typed-Secret-5417"


def fill_server(page, *, host, transport="TLS (STARTTLS)", username="library", password=PASSWORD):
    page.get_by_label("SMTP (mail) server address").fill(host)
    page.get_by_label("Transport protocol").select_option(label=transport)
    page.get_by_label("Authentication user ID").fill(username)
    page.get_by_label("Authentication password").fill(password)


def sources_seen(page):
    """Everything the browser received for the page: the HTML source and the rendered DOM."""
    return page.content() + page.evaluate("document.documentElement.outerHTML")


def test_super_admin_saves_the_consortium_settings(page, login, live_server, super_admin, north):
    login(super_admin)
    expect(page.get_by_role("heading", name="Update Destiny Installation: Test Consortium")).to_be_visible()
    fill_server(page, host="SMTP.Consortium.Example.org")
    expect(page.get_by_role("spinbutton", name="Port")).to_have_value("587")
    page.get_by_label("From/Reply-To display name").fill("Consortium Libraries")
    page.get_by_label("From/Reply-To email").fill("library@consortium.example.org")
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.get_by_text("SMTP settings saved.")).to_be_visible()
    expect(page.get_by_text("Password set, changed")).to_be_visible()
    expect(page.get_by_label("SMTP (mail) server address")).to_have_value("smtp.consortium.example.org")
    expect(page.get_by_label("Authentication password")).to_have_value("")
    assert PASSWORD not in sources_seen(page)
    row = SmtpSettings.objects.get(installation__isnull=False)
    assert (row.host, row.port, row.transport, row.password()) == ("smtp.consortium.example.org", 587, "tls", PASSWORD)
    page.set_viewport_size({"width": 1200, "height": 1400})
    page.screenshot(path=SCREENSHOTS / "installation-options.png", full_page=True)


def test_choosing_a_transport_proposes_its_port_but_keeps_a_typed_one(page, login, super_admin):
    login(super_admin)
    transport, port = page.get_by_label("Transport protocol"), page.get_by_role("spinbutton", name="Port")
    transport.select_option(label="SSL (implicit TLS)")
    expect(port).to_have_value("465")
    port.fill("2525")
    transport.select_option(label="None (plain text)")
    expect(port).to_have_value("2525")


def test_district_admin_switches_to_their_own_server_and_saves(page, login, installation, north, north_admin):
    factories.smtp_settings(installation=installation, host="smtp.consortium.example.org", username="c-user")
    login(north_admin)
    expect(page.get_by_text("This district is using the consortium server")).to_be_visible()
    expect(page.get_by_label("SMTP (mail) server address")).to_be_hidden()
    assert "smtp.consortium.example.org" not in sources_seen(page)

    page.get_by_label("Use this district's own mail server").check()
    fill_server(page, host="smtp.north.example.org", transport="SSL (implicit TLS)")
    expect(page.get_by_role("spinbutton", name="Port")).to_have_value("465")
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.get_by_text("This district is using this district's own server.")).to_be_visible()
    north.refresh_from_db()
    assert north.mail_source == MailSource.OWN
    assert SmtpSettings.objects.get(district=north).password() == PASSWORD
    assert PASSWORD not in sources_seen(page)


def test_a_blank_password_keeps_the_stored_one(page, login, installation, super_admin):
    factories.smtp_settings(
        installation=installation,
        host="smtp.consortium.example.org",
        transport="tls",
        port=587,
        username="library",
        password="stored-secret-1",
    )
    login(super_admin)
    page.get_by_label("Maximum number of emails sent per hour").fill("42")
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.get_by_text("SMTP settings saved.")).to_be_visible()
    row = SmtpSettings.objects.get()
    assert row.max_per_hour == 42
    assert row.password() == "stored-secret-1"
    assert "stored-secret-1" not in sources_seen(page)


def test_the_pair_rule_error_appears_next_to_its_field(page, login, super_admin):
    login(super_admin)
    fill_server(page, host="smtp.consortium.example.org")
    page.get_by_label("From/Reply-To display name").fill("Consortium Libraries")
    page.get_by_role("button", name="Save", exact=True).click()

    field = page.locator("#field-from_email")
    expect(field.locator(".errorlist")).to_contain_text("Enter this too")
    expect(page.get_by_label("From/Reply-To email")).to_have_attribute("aria-invalid", "true")
    assert PASSWORD not in sources_seen(page)
    assert SmtpSettings.objects.count() == 0
