"""The password never shows up in logs, tracebacks or error pages, whatever the outcome."""

import base64
import logging
import sys

import pytest
from django.urls import reverse
from django.views.debug import ExceptionReporter

from settings_app.mail import transport
from settings_app.selectors import scope_settings
from tests.smtp_servers import PASSWORD, USERNAME

pytestmark = pytest.mark.django_db


def posted(server, **changes):
    data = {
        "smtp-host": "localhost",
        "smtp-port": str(server.port),
        "smtp-transport": "tls",
        "smtp-username": USERNAME,
        "smtp-password": PASSWORD,
        "smtp-from_name": "North Library",
        "smtp-from_email": "library@north.example.org",
        "smtp-max_per_hour": "500",
        "test-send_to": "patron@example.org",
    }
    return data | changes


def forms_of_the_secret():
    return [
        PASSWORD,
        base64.b64encode(PASSWORD.encode()).decode(),
        base64.b64encode(f"\0{USERNAME}\0{PASSWORD}".encode()).decode(),
    ]


def test_no_log_line_carries_the_password(client, caplog, consortium, super_admin, starttls_server, gmail_server):
    caplog.set_level(logging.DEBUG)
    client.force_login(super_admin)
    client.post(reverse("installation_test_server"), posted(starttls_server))
    client.post(reverse("installation_test_email"), posted(starttls_server))
    client.post(reverse("installation_test_server"), posted(gmail_server))
    client.post(reverse("installation_options"), posted(starttls_server))

    assert scope_settings(consortium).password() == PASSWORD
    assert caplog.records
    for secret in forms_of_the_secret():
        assert secret not in caplog.text


def test_an_error_page_masks_the_posted_password(client, monkeypatch, settings, consortium, super_admin, plain_server):
    async def broken(config):
        raise RuntimeError("the connector broke")

    monkeypatch.setattr(transport, "test_server", broken)
    settings.DEBUG = True
    client.raise_request_exception = False
    client.force_login(super_admin)

    response = client.post(reverse("installation_test_server"), posted(plain_server, **{"smtp-transport": "none"}))

    assert response.status_code == 500
    page = response.content.decode()
    assert "the connector broke" in page
    assert "smtp-password" in page
    assert "connect_timeout" in page  # frame variables are shown, their secrets are not
    for secret in forms_of_the_secret():
        assert secret not in page


def test_an_error_report_mailed_or_logged_in_production_hides_the_password(rf, super_admin):
    request = rf.post("/setup/installation/options/test-server/", {"smtp-password": PASSWORD})
    request.user = super_admin

    def deep_in_the_connector(settings_values):
        password = settings_values["password"]
        raise RuntimeError(f"failed for user {settings_values['username']} ({len(password)} characters)")

    try:
        deep_in_the_connector({"username": USERNAME, "password": PASSWORD, "sealed": {"token": PASSWORD}})
    except RuntimeError:
        report = ExceptionReporter(request, *sys.exc_info()).get_traceback_text()

    assert "deep_in_the_connector" in report
    assert USERNAME in report
    for secret in forms_of_the_secret():
        assert secret not in report
