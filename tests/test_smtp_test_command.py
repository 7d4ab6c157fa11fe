"""manage.py smtp_test against real servers on 127.0.0.1: exit codes, password from stdin, what it prints."""

import base64
import io
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from settings_app.models import MailSource
from tests import factories
from tests.smtp_servers import PASSWORD, USERNAME

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
SECRETS = (PASSWORD, base64.b64encode(PASSWORD.encode()).decode())


@pytest.fixture(autouse=True)
def short_timeouts(settings):
    settings.SMTP_CONNECT_TIMEOUT = 1.0
    settings.SMTP_TOTAL_TIMEOUT = 5.0


def run(**options) -> tuple[int, str]:
    """Run the command; return its exit status and everything it printed."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("smtp_test", stdout=out, stderr=err, **options)
    except CommandError as exc:
        return exc.returncode, out.getvalue() + err.getvalue() + str(exc)
    return 0, out.getvalue() + err.getvalue()


def assert_no_secret(output: str) -> None:
    for secret in SECRETS:
        assert secret not in output


def test_working_server_exits_zero_and_prints_steps_transcript_and_verdict(installation, plain_server):
    status, output = run(host="localhost", port=plain_server.port, transport="none")

    assert status == 0, output
    assert "Steps:" in output and "Resolve" in output and "EHLO" in output and "QUIT" in output
    assert "Transcript:" in output and "S: 220 localhost" in output
    assert "Verdict: OK" in output


def test_password_is_read_from_stdin_and_never_printed(installation, starttls_server, smtp_ca, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(smtp_ca.pem)

    status, output = run(
        host="localhost",
        port=starttls_server.port,
        transport="tls",
        username=USERNAME,
        password_stdin=True,
        ca_file=ca_file,
        stdin=io.StringIO(PASSWORD + "\n"),
    )

    assert status == 0, output
    assert [login.accepted for login in starttls_server.recorded.logins] == [True]
    assert "AUTH PLAIN ********" in output
    assert "TLSv1" in output
    assert_no_secret(output)


def test_failing_verdict_exits_one_without_printing_the_password(installation, plain_auth_server):
    status, output = run(
        host="localhost",
        port=plain_auth_server.port,
        transport="none",
        username=USERNAME,
        password_stdin=True,
        stdin=io.StringIO("not-" + PASSWORD + "\n"),
    )

    assert status == 1
    assert "Verdict: auth_failed" in output
    assert "Fix:" in output
    assert PASSWORD not in output


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"scope": "installation", "host": "localhost"},
        {"scope": "installation", "username": USERNAME},
        {"host": "localhost", "password_stdin": True},
        {"host": "localhost", "port": 0},
        {"host": "localhost", "port": 70000},
        {"host": "localhost", "ca_file": Path("/nonexistent/ca.pem")},
        {"host": "localhost", "send_to": "not an address"},
        {"host": "localhost", "password": "hunter2"},
        {"scope": "no-such-district"},
        {"scope": "installation"},
    ],
)
def test_bad_arguments_exit_two(installation, options):
    status, output = run(**options)

    assert status == 2, output
    assert "hunter2" not in output


def test_saved_installation_settings_are_tested_with_their_stored_password(installation, plain_auth_server):
    factories.smtp_settings(
        installation=installation, port=plain_auth_server.port, username=USERNAME, password=PASSWORD
    )

    status, output = run(scope="installation")

    assert status == 0, output
    assert [login.accepted for login in plain_auth_server.recorded.logins] == [True]
    assert_no_secret(output)


def test_district_on_the_consortium_server_tests_the_installation_settings(installation, north, plain_server):
    factories.smtp_settings(installation=installation, port=plain_server.port)

    status, output = run(scope="north")

    assert status == 0, output
    assert plain_server.recorded.ehlo_names


def test_district_with_its_own_server_tests_its_own_settings(installation, north, plain_server, silent_server):
    factories.smtp_settings(installation=installation, port=silent_server.port)
    factories.smtp_settings(district=north, port=plain_server.port)
    north.mail_source = MailSource.OWN
    north.save()

    status, output = run(scope="north")

    assert status == 0, output
    assert f"port {plain_server.port}" in output


def test_unreadable_stored_password_exits_one_and_asks_for_it_again(installation, plain_auth_server):
    row = factories.smtp_settings(installation=installation, port=plain_auth_server.port, username=USERNAME)
    row.password_sealed = "not-a-fernet-token"
    row.save()

    status, output = run(scope="installation")

    assert status == 1
    assert "Enter the password again" in output
    assert plain_auth_server.recorded.sasl_commands == []


def test_send_to_delivers_a_test_email_from_the_scope_sender(installation, plain_server):
    factories.smtp_settings(
        installation=installation,
        port=plain_server.port,
        from_name="Consortium Libraries",
        from_email="libraries@consortium.example.org",
    )

    status, output = run(scope="installation", send_to="admin@consortium.example.org")

    assert status == 0, output
    (received,) = plain_server.recorded.messages
    assert received.mail_from == "libraries@consortium.example.org"
    assert received.rcpt_tos == ("admin@consortium.example.org",)
    assert received.message["From"] == "Consortium Libraries <libraries@consortium.example.org>"
    assert received.message["Reply-To"] == "Consortium Libraries <libraries@consortium.example.org>"
    assert "Test Consortium" in received.message.get_content()
    assert "queue id Q1" in output


def test_without_an_installation_the_hosted_policy_applies(db, plain_server):
    status, output = run(host="localhost", port=plain_server.port, transport="none")

    assert status == 1
    assert "Verdict: policy" in output
    assert plain_server.recorded.ehlo_names == []


@pytest.mark.parametrize("arguments", [["--transport", "bogus"], ["--host", "localhost", "--password", "hunter2"]])
def test_command_line_errors_exit_two_without_echoing_a_password(arguments):
    finished = subprocess.run(
        [sys.executable, "manage.py", "smtp_test", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 2, finished.stderr
    assert "hunter2" not in finished.stdout + finished.stderr
