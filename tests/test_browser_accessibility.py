"""axe-core on every page: no serious or critical violation.

axe-core comes from the npm registry at test time (bin/test installs it under var/node); it is never committed.
"""

import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from settings_app.mail import detect
from settings_app.mail.config import Transport
from settings_app.models import DeliveryAttempt, Loan, MailSource, Notice, NoticeStatus, Patron, SmtpSettings
from tests import factories
from tests.smtp_servers import PASSWORD, USERNAME

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parent.parent / "var" / "node" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = {"serious", "critical"}


@pytest.fixture(scope="session")
def axe_source():
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run bin/test, or `npm install --no-save --prefix var/node axe-core@4`")
    return AXE.read_text()


@pytest.fixture
def audit(page, axe_source):
    """audit(name) runs axe on the page as it is now; the test fails at the end with every blocking violation."""
    found: list[str] = []

    def _audit(name):
        page.add_script_tag(content=axe_source)
        results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
        for violation in results["violations"]:
            if violation["impact"] in BLOCKING:
                targets = "; ".join(" ".join(node["target"]) for node in violation["nodes"][:5])
                found.append(f"{name}: [{violation['impact']}] {violation['id']}: {violation['help']} -> {targets}")

    yield _audit
    assert not found, "axe-core found serious or critical violations:\n" + "\n".join(found)


@pytest.fixture
def consortium_row(consortium):
    return factories.smtp_settings(
        installation=consortium, host="localhost", from_name="Consortium Libraries", from_email="lib@example.org"
    )


@pytest.fixture
def notices(north, consortium_row):
    """Patrons with overdue items, and one notice of every status in the log."""
    school = north.schools.get()
    due = timezone.localdate() - dt.timedelta(days=3)
    for name in ("Ana Lima", "Bo Chen"):
        patron = Patron.objects.create(school=school, name=name, email=f"{name.split()[0].lower()}@example.org")
        Loan.objects.create(patron=patron, title="Dune", due_on=due)
    for number, status in enumerate((NoticeStatus.QUEUED, NoticeStatus.SENT, NoticeStatus.FAILED)):
        notice = Notice.objects.create(
            kind="overdue",
            school=school,
            recipient_name=f"Patron {number}",
            recipient_email=f"p{number}@example.org",
            message_id=f"<n{number}@test>",
            status=status,
            attempts=1,
            last_category="recipient_rejected" if status == NoticeStatus.FAILED else "",
        )
        DeliveryAttempt.objects.create(notice=notice, outcome="sent", reply="250 2.0.0 Ok")


def pause(row):
    row.paused_at, row.pause_category, row.pause_detail = timezone.now(), "auth_failed", "535 5.7.8 Bad credentials"
    row.save()


def test_the_login_page_is_accessible(page, live_server, audit):
    page.goto(f"{live_server.url}/login/")
    audit("login")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("This field is required.").first).to_be_visible()
    audit("login with an error")


def test_the_super_administrators_pages_are_accessible(
    page, login, live_server, audit, monkeypatch, consortium_row, super_admin, north, south, notices, starttls_server
):
    monkeypatch.setattr(detect, "CANDIDATES", ((starttls_server.port, Transport.TLS),))
    pause(consortium_row)
    login(super_admin)
    audit("Options, paused")

    page.get_by_label("Known provider").select_option(label="Gmail / Google Workspace (TLS, 587)")
    page.get_by_label("SMTP (mail) server address").fill("localhost")
    page.get_by_role("button", name="Auto-detect port and transport").click()
    expect(page.locator("#detect-result")).to_contain_text("Found", timeout=10_000)
    audit("Options with a preset and an Auto-detect result")

    page.get_by_label("Authentication user ID").fill(USERNAME)
    page.get_by_label("Authentication password").fill(PASSWORD)
    page.get_by_role("button", name="Test Server").click()
    expect(page.locator("#test-result")).to_contain_text("The mail server works", timeout=10_000)
    page.locator("#test-result summary").click()
    audit("Options with a Test Server result")

    page.get_by_label("From/Reply-To display name").fill("Consortium Libraries")
    page.get_by_label("From/Reply-To email").fill("")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Fix these first")).to_be_visible()
    audit("Options with form errors")

    page.goto(f"{live_server.url}/setup/installation/options/?preset=microsoft365")
    audit("Options with a preset chosen without JavaScript")
    page.goto(f"{live_server.url}/setup/")
    audit("Setup")
    page.goto(f"{live_server.url}/delivery/")
    page.locator("#notice-log details summary").first.click()
    audit("Delivery log, all districts")


def test_the_district_administrators_pages_are_accessible(
    page, login, live_server, audit, consortium_row, north, south, north_admin, notices
):
    pause(consortium_row)
    login(north_admin)
    audit("District Options, using the paused consortium server")
    page.get_by_label("Use this district's own mail server").check()
    audit("District Options, own server (before saving)")
    north.mail_source = MailSource.OWN
    north.save()
    factories.smtp_settings(district=north, host="smtp.north.example.org", port=587, transport="tls")
    page.reload()
    audit("District Options, own server")
    page.goto(f"{live_server.url}/setup/")
    audit("Setup")
    page.goto(f"{live_server.url}/districts/north/delivery/")
    audit("Delivery log of a district")
    page.goto(f"{live_server.url}/setup/districts/south/options/")
    audit("Not found")


def test_the_staff_pages_are_accessible(page, login, live_server, audit, north, north_staff, notices):
    login(north_staff)
    audit("Send overdue notices")
    page.locator("#notice-preview-en summary").click()
    audit("Send overdue notices with the preview open")
    page.get_by_role("link", name="Email a Resource List").click()
    audit("Email a Resource List")
    page.get_by_role("button", name="Email the Resource List").click()
    audit("Email a Resource List with errors")


def tab_to(page, locator, *, limit=80):
    """Press Tab until `locator` has the focus, and check that the focus is visible on the way."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if locator.evaluate("element => element === document.activeElement"):
            assert_focus_visible(page)
            return
    raise AssertionError(f"Tab never reached {locator}")


def assert_focus_visible(page):
    outline = page.evaluate(
        """() => {
            const style = getComputedStyle(document.activeElement);
            return {style: style.outlineStyle, width: parseFloat(style.outlineWidth), visible:
                    document.activeElement.matches(':focus-visible')};
        }"""
    )
    assert outline["visible"] and outline["style"] != "none" and outline["width"] >= 2, outline


def test_the_whole_configuration_flow_works_with_the_keyboard_alone(
    page, login, consortium_row, super_admin, starttls_server
):
    login(super_admin)
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    assert_focus_visible(page)

    chooser = page.get_by_label("Known provider")
    tab_to(page, chooser)
    page.keyboard.type("Microsoft")
    expect(page.get_by_label("SMTP (mail) server address")).to_have_value("smtp.office365.com")
    expect(page.locator("#preset-caveat")).to_contain_text("SMTP AUTH must be enabled")

    # The provider cannot be reached from the tests: a local server with the same transport stands in for it.
    fields = [page.get_by_label("SMTP (mail) server address"), page.get_by_role("spinbutton", name="Port")]
    for field, value in zip(fields, ["localhost", str(starttls_server.port)], strict=True):
        tab_to(page, field)
        page.keyboard.press("ControlOrMeta+A")
        page.keyboard.type(value)
    expect(page.get_by_label("Transport protocol")).to_have_value("tls")
    tab_to(page, page.get_by_label("Authentication user ID"))
    page.keyboard.type(USERNAME)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)

    tab_to(page, page.get_by_role("button", name="Test Server"))
    page.keyboard.press("Enter")
    result = page.locator("#test-result")
    expect(result).to_have_attribute("role", "status")
    expect(result).to_have_attribute("aria-live", "polite")
    expect(result.get_by_role("heading", name="The mail server works")).to_be_visible(timeout=10_000)

    page.keyboard.press("Shift+Tab")
    expect(page.get_by_label("Maximum number of emails sent per hour")).to_be_focused()
    tab_to(page, page.get_by_role("button", name="Save", exact=True))
    page.keyboard.press("Space")
    expect(page.get_by_text("SMTP settings saved.")).to_be_visible()
    row = SmtpSettings.objects.get()
    assert (row.host, row.port, row.transport, row.username) == ("localhost", starttls_server.port, "tls", USERNAME)
    assert row.password() == PASSWORD
