"""Test Server and Test email through the pages, against real SMTP servers on 127.0.0.1."""

import base64
import email
import email.policy

import pytest
from django.urls import reverse

from settings_app.mail.localserver import RecordingHandler, ServerMode
from settings_app.models import SmtpSettings, SmtpTestRecord
from settings_app.selectors import scope_settings
from tests import factories
from tests.smtp_servers import EHLO_NAME, PASSWORD, USERNAME

pytestmark = pytest.mark.django_db

TEST_SERVER = reverse("installation_test_server")
TEST_EMAIL = reverse("installation_test_email")
INLINE = {"HTTP_X_REQUESTED_WITH": "fetch"}


def saved_starttls(consortium, server, password=PASSWORD):
    """The consortium's saved settings: the STARTTLS test server, logging in as USERNAME."""
    return factories.smtp_settings(
        installation=consortium,
        host="localhost",
        port=server.port,
        transport="tls",
        username=USERNAME,
        password=password,
    )


def form(server, transport="tls", username=USERNAME, password=PASSWORD, **changes):
    data = {
        "smtp-host": "localhost",
        "smtp-port": str(server.port),
        "smtp-transport": transport,
        "smtp-username": username,
        "smtp-password": password,
        "smtp-from_name": "North Library",
        "smtp-from_email": "library@north.example.org",
        "smtp-max_per_hour": "500",
        "test-send_to": "patron@example.org",
    }
    return {**data, **{f"smtp-{key}": value for key, value in changes.items()}}


def test_test_server_reports_each_step_of_a_working_starttls_server(client, consortium, super_admin, starttls_server):
    client.force_login(super_admin)
    response = client.post(TEST_SERVER, form(starttls_server), **INLINE)

    html = response.content.decode()
    assert response.status_code == 200
    assert "The mail server works" in html
    for step in ("Resolve", "Connect", "Greeting", "EHLO", "STARTTLS", "TLS", "AUTH", "QUIT"):
        assert f">{step}<" in html
    assert "Destiny Mail Test CA" in html
    assert starttls_server.recorded.sasl_commands == ["PLAIN"]
    assert starttls_server.recorded.ehlo_names[0] == EHLO_NAME
    record = SmtpTestRecord.objects.get()
    assert (record.ok, record.category, record.user) == (True, "ok", super_admin)


def test_the_password_appears_in_no_result_page_or_transcript(client, consortium, super_admin, starttls_server):
    client.force_login(super_admin)
    inline = client.post(TEST_SERVER, form(starttls_server), **INLINE).content.decode()
    full = client.post(TEST_SERVER, form(starttls_server)).content.decode()
    plain = base64.b64encode(f"\0{USERNAME}\0{PASSWORD}".encode()).decode()
    for html in (inline, full):
        assert "Transcript" in html
        assert PASSWORD not in html
        assert plain not in html
        assert base64.b64encode(PASSWORD.encode()).decode() not in html


def test_test_email_arrives_with_the_settings_sender_and_ehlo_name(client, consortium, super_admin, starttls_server):
    client.force_login(super_admin)
    html = client.post(TEST_EMAIL, form(starttls_server), **INLINE).content.decode()

    assert "queue id" in html
    (received,) = starttls_server.recorded.messages
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert received.mail_from == "library@north.example.org"
    assert received.rcpt_tos == ("patron@example.org",)
    assert message["From"] == "North Library <library@north.example.org>"
    assert message["Reply-To"] == "North Library <library@north.example.org>"
    assert message["Message-ID"].endswith(f"@{EHLO_NAME}>")
    assert "Test Consortium" in message["Subject"]
    assert starttls_server.recorded.ehlo_names[0] == EHLO_NAME
    for step in ("MAIL FROM", "RCPT TO", "DATA"):
        assert f">{step}<" in html


def test_test_email_without_a_sender_uses_the_default_and_says_so(
    client, consortium, super_admin, plain_server, settings
):
    client.force_login(super_admin)
    data = form(plain_server, transport="none", username="", password="", from_name="", from_email="")
    html = client.post(TEST_EMAIL, data, **INLINE).content.decode()
    assert "the installation&#x27;s default sender" in html
    (received,) = plain_server.recorded.messages
    assert received.mail_from == "no-reply@destiny-mail.localdomain"


@pytest.mark.parametrize(
    "change",
    [
        {"host": "127.0.0.1"},
        {"port": "port-of-other-server"},
        {"transport": "ssl"},
        {"username": "someone-else@north.example.org"},
    ],
)
def test_the_stored_password_never_goes_to_a_changed_destination(
    client, consortium, super_admin, starttls_server, plain_auth_server, change
):
    saved_starttls(consortium, starttls_server)
    if change.get("port"):
        change["port"] = str(plain_auth_server.port)
    client.force_login(super_admin)

    html = client.post(TEST_SERVER, form(starttls_server, password="", **change), **INLINE).content.decode()

    assert "password" in html.lower()
    assert SmtpTestRecord.objects.get().category == "password_required"
    assert starttls_server.recorded.sasl_commands == []
    assert plain_auth_server.recorded.sasl_commands == []
    assert starttls_server.recorded.ehlo_names == [] and plain_auth_server.recorded.ehlo_names == []


def test_a_blank_password_uses_the_stored_one_for_the_saved_destination(
    client, consortium, super_admin, starttls_server
):
    saved_starttls(consortium, starttls_server)
    client.force_login(super_admin)
    html = client.post(TEST_SERVER, form(starttls_server, password=""), **INLINE).content.decode()
    assert "The mail server works" in html
    row = scope_settings(consortium)
    assert (row.health, row.last_test_by) == ("working", super_admin)


def test_a_good_test_of_the_saved_server_resumes_a_paused_configuration(
    client, consortium, super_admin, starttls_server
):
    from django.utils import timezone

    row = saved_starttls(consortium, starttls_server)
    SmtpSettings.objects.filter(pk=row.pk).update(paused_at=timezone.now(), pause_category="auth_failed")
    client.force_login(super_admin)
    html = client.post(TEST_SERVER, form(starttls_server, password=""), **INLINE).content.decode()
    assert "Sending resumed" in html
    row.refresh_from_db()
    assert row.paused_at is None and row.health == "working"


def test_without_javascript_the_typed_password_is_kept_server_side_for_save(
    client, consortium, super_admin, starttls_server
):
    client.force_login(super_admin)
    page = client.post(TEST_SERVER, form(starttls_server)).content.decode()
    assert "The mail server works" in page
    assert "is kept, encrypted, for 10 minutes" in page
    assert PASSWORD not in page

    response = client.post(reverse("installation_options"), form(starttls_server, password=""))

    assert response.status_code == 302
    row = scope_settings(consortium)
    assert row.password() == PASSWORD
    assert row.health == "working"  # the test just before the save still counts


def test_a_kept_password_is_not_used_for_another_destination(client, consortium, super_admin, starttls_server):
    client.force_login(super_admin)
    client.post(TEST_SERVER, form(starttls_server))
    client.post(reverse("installation_options"), form(starttls_server, password="", username="other-user"))
    assert scope_settings(consortium).password() == ""


def test_hostile_server_replies_are_escaped(client, consortium, super_admin, smtp_server_factory):
    server = smtp_server_factory(
        RecordingHandler(replies={"MAIL": "550 5.7.1 <script>alert('x')</script> rejected"}), ServerMode.PLAIN
    )
    client.force_login(super_admin)
    html = client.post(TEST_EMAIL, form(server, transport="none", username="", password=""), **INLINE).content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert" in html


def test_a_non_smtp_service_banner_is_never_shown(client, consortium, super_admin, ssh_server):
    client.force_login(super_admin)
    html = client.post(
        TEST_SERVER, form(ssh_server, transport="none", username="", password=""), **INLINE
    ).content.decode()
    assert "OpenSSH" not in html
    assert SmtpTestRecord.objects.get().category == "protocol"


def test_tests_are_rate_limited_per_user(client, consortium, super_admin, plain_server, settings):
    settings.SMTP_TESTS_PER_MINUTE = 2
    client.force_login(super_admin)
    data = form(plain_server, transport="none", username="", password="")
    statuses = [client.post(TEST_SERVER, data, **INLINE).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert SmtpTestRecord.objects.count() == 2


def test_get_never_runs_a_test(client, consortium, super_admin, plain_server):
    client.force_login(super_admin)
    assert client.get(TEST_SERVER, form(plain_server, transport="none")).status_code == 405
    assert client.get(TEST_EMAIL, form(plain_server, transport="none")).status_code == 405
    assert plain_server.recorded.ehlo_names == []


def test_tests_need_the_csrf_token(consortium, super_admin, plain_server):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(super_admin)
    response = client.post(TEST_SERVER, form(plain_server, transport="none", username="", password=""))
    assert response.status_code == 403
    assert plain_server.recorded.ehlo_names == []


def test_invalid_values_are_reported_without_connecting(client, consortium, super_admin):
    client.force_login(super_admin)
    response = client.post(TEST_SERVER, {"smtp-host": "smtp.example.org:25", "smtp-transport": "tls"}, **INLINE)
    assert response.status_code == 400
    assert "Fix these first" in response.content.decode()
    assert not SmtpTestRecord.objects.exists()


def test_test_emails_count_toward_the_hourly_cap(client, consortium, super_admin, plain_server):
    factories.smtp_settings(installation=consortium, host="localhost", port=plain_server.port, max_per_hour=1)
    client.force_login(super_admin)
    data = form(plain_server, transport="none", username="", password="")

    first = client.post(TEST_EMAIL, data, **INLINE)
    second = client.post(TEST_EMAIL, data, **INLINE)

    assert first.status_code == 200
    assert second.status_code == 429
    assert "maximum of 1 emails in the last hour" in second.content.decode()
    assert len(plain_server.recorded.messages) == 1


def test_a_good_test_with_a_typed_password_does_not_resume_delivery(client, consortium, super_admin, starttls_server):
    from django.utils import timezone

    row = saved_starttls(consortium, starttls_server, password="the-old-wrong-password")
    SmtpSettings.objects.filter(pk=row.pk).update(paused_at=timezone.now(), pause_category="auth_failed")
    client.force_login(super_admin)
    html = client.post(TEST_SERVER, form(starttls_server), **INLINE).content.decode()

    assert "The mail server works" in html and "Sending resumed" not in html
    row.refresh_from_db()
    assert row.paused_at is not None  # the workers would still log in with the stored, wrong password


def test_a_test_email_refused_before_sending_takes_no_slot_of_the_cap(client, consortium, super_admin, plain_server):
    factories.smtp_settings(installation=consortium, host="localhost", port=plain_server.port, max_per_hour=1)
    client.force_login(super_admin)
    needs_password = form(plain_server, transport="none", username="someone", password="")
    assert "password" in client.post(TEST_EMAIL, needs_password, **INLINE).content.decode().lower()

    sent = client.post(TEST_EMAIL, form(plain_server, transport="none", username="", password=""), **INLINE)

    assert sent.status_code == 200
    assert len(plain_server.recorded.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_after_a_good_test_of_a_paused_server_the_notices_that_waited_go_out(
    client, consortium, super_admin, north, starttls_server, settings
):
    import datetime as dt

    from django.utils import timezone

    from settings_app.delivery import queue
    from settings_app.models import Loan, Notice, NoticeStatus, Patron

    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    row = saved_starttls(consortium, starttls_server)
    SmtpSettings.objects.filter(pk=row.pk).update(paused_at=timezone.now(), pause_category="auth_failed")
    patron = Patron.objects.create(school=north.schools.get(), name="Ana Lima", email="ana@example.org")
    Loan.objects.create(patron=patron, title="Dune", due_on=timezone.localdate() - dt.timedelta(days=3))
    queue.notices_queue_overdue(school=patron.school, acting_user=super_admin)
    assert starttls_server.recorded.messages == []  # paused: the notice waits

    client.force_login(super_admin)
    html = client.post(TEST_SERVER, form(starttls_server, password=""), **INLINE).content.decode()

    assert "Sending resumed" in html
    notice = Notice.objects.get()
    assert notice.status == NoticeStatus.SENT
    (received,) = starttls_server.recorded.messages
    assert received.message["Message-ID"] == notice.message_id
