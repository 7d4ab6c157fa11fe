"""The notice pipeline against real SMTP servers on 127.0.0.1: what the server received, and each notice's state."""

import asyncio
import datetime as dt
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import cast

import pytest
from django.test import override_settings
from django.utils import timezone

from settings_app import crypto, tasks
from settings_app.delivery import cap, queue, worker
from settings_app.mail.localserver import RecordingHandler, smtp_server
from settings_app.models import (
    AttemptOutcome,
    DeliveryAttempt,
    DeliveryState,
    Loan,
    Notice,
    NoticeStatus,
    Patron,
)
from tests import factories
from tests.smtp_servers import PASSWORD, USERNAME

TODAY = dt.date(2025, 3, 10)


@pytest.fixture
def handler():
    return RecordingHandler()


@pytest.fixture
def server(handler):
    controller = smtp_server(handler)
    yield controller
    controller.stop()


@pytest.fixture
def school(north):
    return north.schools.get()


def settings_for(installation, port, **fields):
    fields = {"host": "127.0.0.1", "from_name": "North Library", "from_email": "library@north.example.org", **fields}
    return factories.smtp_settings(installation=installation, port=port, **fields)


@pytest.fixture
def row(installation, server):
    return settings_for(installation, server.port)


def overdue(school, name, email, *titles):
    patron = Patron.objects.create(school=school, name=name, email=email)
    for title in titles:
        Loan.objects.create(patron=patron, title=title, due_on=TODAY - dt.timedelta(days=3))
    return patron


def queue_overdue(school, user, **sender):
    return queue.notices_queue_overdue(school=school, acting_user=user, today=TODAY, **sender)


def test_overdue_notices_arrive_well_formed_and_are_marked_sent(school, row, handler, north_staff):
    overdue(school, "José Núñez", "jose@example.org", "Dune", "Emma <3")
    overdue(school, "Bo Chen", "bo@example.org", "Ulysses")

    queue_overdue(school, north_staff)
    worker.deliver(row.pk)

    notices = {n.recipient_email: n for n in Notice.objects.all()}
    assert {n.status for n in notices.values()} == {NoticeStatus.SENT}
    assert len(handler.messages) == 2
    for received in handler.messages:
        message = received.message
        notice = notices[received.rcpt_tos[0]]
        assert received.mail_from == "library@north.example.org"
        assert message["Message-ID"] == notice.message_id
        assert str(message["From"]) == str(message["Reply-To"]) == "North Library <library@north.example.org>"
        assert message["To"].addresses[0].addr_spec == notice.recipient_email
        assert message["To"].addresses[0].display_name == notice.recipient_name
        assert "North High" in message["Subject"]
        assert not message.defects and all(not part.defects for part in message.walk())
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert "North High" in text and "North" in text and notice.recipient_name in text
        assert all(item["title"] in text for item in notice.items)
    assert "Emma &lt;3" in handler.messages[0].message.get_body(("html",)).get_content() or "Emma &lt;3" in html
    attempt = DeliveryAttempt.objects.get(notice=notices["bo@example.org"])
    assert attempt.outcome == AttemptOutcome.SENT and "queued as" in attempt.reply


def test_the_staff_members_own_name_and_email_become_from_and_reply_to(school, row, handler, north_staff):
    overdue(school, "Ana Lima", "ana@example.org", "Dune")
    queue_overdue(school, north_staff, sender_name="Ms Reed", sender_email="reed@example.org")
    worker.deliver(row.pk)
    message = handler.messages[0].message
    assert str(message["From"]) == str(message["Reply-To"]) == "Ms Reed <reed@example.org>"
    assert "Ms Reed" in message.get_body(("plain",)).get_content()


def test_a_line_with_a_single_dot_arrives_in_one_message_unchanged(school, row, handler, north_staff):
    queue.notices_queue_resource_list(
        school=school, acting_user=north_staff, recipients=["a@example.org"], titles=[".", "..x"], note=".\nend"
    )
    worker.deliver(row.pk)
    assert len(handler.messages) == 1
    text = handler.messages[0].message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "\n.\nend" in text and "  - .\n" in text and "  - ..x\n" in text
    assert Notice.objects.get().status == NoticeStatus.SENT


def test_a_4xx_reply_defers_the_notice_with_backoff(school, handler, server, installation, north_staff):
    row = settings_for(installation, server.port)
    handler.replies["RCPT"] = "451 4.3.0 Try again later"
    overdue(school, "Ana Lima", "ana@example.org", "Dune")
    queue_overdue(school, north_staff)
    worker.deliver(row.pk)
    notice = Notice.objects.get()
    assert notice.status == NoticeStatus.QUEUED and notice.attempts == 1
    assert notice.next_attempt_at > timezone.now() + dt.timedelta(seconds=20)
    assert notice.last_category == "temporary_failure" and "451 4.3.0" in notice.last_reply
    assert handler.messages == []


def test_421_closes_the_connection_and_backs_off_the_whole_configuration(school, handler, row, north_staff):
    handler.replies["MAIL"] = "421 4.7.0 Too busy, closing"
    overdue(school, "Ana Lima", "ana@example.org", "Dune")
    overdue(school, "Bo Chen", "bo@example.org", "Emma")
    queue_overdue(school, north_staff)
    worker.deliver(row.pk)
    attempts = sorted(Notice.objects.values_list("attempts", flat=True))
    assert attempts == [0, 1], "the second notice was not tried on a closing connection"
    assert set(Notice.objects.values_list("status", flat=True)) == {NoticeStatus.QUEUED}
    state = DeliveryState.objects.get(smtp_settings=row)
    assert state.not_before is not None and state.not_before > timezone.now() and "421" in state.busy_reply
    worker.deliver(row.pk)  # still backing off: nothing is tried
    assert sorted(Notice.objects.values_list("attempts", flat=True)) == [0, 1]


def test_a_5xx_on_rcpt_fails_that_notice_and_flags_the_patron_while_the_others_go_out(
    school, handler, row, north_staff
):
    handler.refused["gone@example.org"] = "550 5.1.1 No such user"
    gone = overdue(school, "Gone Away", "gone@example.org", "Dune")
    overdue(school, "Bo Chen", "bo@example.org", "Emma")
    queue_overdue(school, north_staff)
    worker.deliver(row.pk)
    failed = Notice.objects.get(recipient_email="gone@example.org")
    assert failed.status == NoticeStatus.FAILED and "550 5.1.1" in failed.last_reply
    assert Notice.objects.get(recipient_email="bo@example.org").status == NoticeStatus.SENT
    assert [m.rcpt_tos for m in handler.messages] == [("bo@example.org",)]
    gone.refresh_from_db()
    assert gone.address_refused
    queue_overdue(school, north_staff)
    waiting = Notice.objects.filter(status=NoticeStatus.QUEUED).values_list("recipient_email", flat=True)
    assert list(waiting) == ["bo@example.org"], "a refused address is not queued again"


@pytest.fixture
def auth_server():
    handler = RecordingHandler(credentials=("library", "right"))
    controller = smtp_server(handler, auth=True)
    yield handler, controller
    controller.stop()


def test_a_refused_login_pauses_the_configuration_and_a_resume_sends_what_waited(
    school, auth_server, installation, north_staff, django_capture_on_commit_callbacks
):
    handler, controller = auth_server
    row = settings_for(installation, controller.port, username="library", password="wrong")
    overdue(school, "Ana Lima", "ana@example.org", "Dune")
    queue_overdue(school, north_staff)
    worker.deliver(row.pk)
    row.refresh_from_db()
    notice = Notice.objects.get()
    assert row.paused_at is not None and row.pause_category == "auth_failed"
    assert row.pause_detail.startswith("535") and "wrong" not in row.pause_detail  # the server's words, as said
    assert notice.status == NoticeStatus.QUEUED and notice.attempts == 0
    assert len(handler.logins) == 1

    row.password_sealed = crypto.seal("right", row.destination)
    row.paused_at = None
    row.save()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queue.resume(row.pk)
    assert callbacks
    worker.deliver(row.pk)
    assert Notice.objects.get().status == NoticeStatus.SENT
    assert handler.messages[0].login == "library"


def test_googles_app_password_reply_pauses_with_its_own_category(school, installation, north_staff):
    handler = RecordingHandler(credentials=None, login_refusal="534 5.7.9 Application-specific password required")
    controller = smtp_server(handler, auth=True)
    try:
        row = settings_for(installation, controller.port, username="x@gmail.com", password="pw")
        overdue(school, "Ana Lima", "ana@example.org", "Dune")
        queue_overdue(school, north_staff)
        worker.deliver(row.pk)
    finally:
        controller.stop()
    row.refresh_from_db()
    assert row.pause_category == "gmail_app_password"
    assert Notice.objects.get().status == NoticeStatus.QUEUED


def test_starttls_missing_pauses_and_nothing_is_sent_in_plain_text(school, handler, server, installation, north_staff):
    row = settings_for(installation, server.port, transport="tls")
    overdue(school, "Ana Lima", "ana@example.org", "Dune")
    queue_overdue(school, north_staff)
    worker.deliver(row.pk)
    row.refresh_from_db()
    assert row.pause_category == "starttls_missing"
    assert handler.messages == [] and Notice.objects.get().status == NoticeStatus.QUEUED


def test_a_sender_refused_by_the_server_pauses_instead_of_failing_every_notice(school, handler, row, north_staff):
    handler.replies["MAIL"] = "553 5.7.1 Sender address rejected: not owned by user"
    for i in range(3):
        overdue(school, f"Patron {i}", f"p{i}@example.org", "Dune")
    queue_overdue(school, north_staff)
    worker.deliver(row.pk)
    row.refresh_from_db()
    assert row.pause_category == "sender_rejected" and "553 5.7.1" in row.pause_detail
    assert set(Notice.objects.values_list("status", flat=True)) == {NoticeStatus.QUEUED}
    assert sorted(Notice.objects.values_list("attempts", flat=True)) == [0, 0, 1]


def test_an_unreadable_stored_password_pauses_without_connecting(school, handler, row, north_staff):
    row.username, row.password_sealed = "library", "not-a-token"
    row.save()
    overdue(school, "Ana Lima", "ana@example.org", "Dune")
    queue_overdue(school, north_staff)
    worker.deliver(row.pk)
    row.refresh_from_db()
    assert row.pause_category == "password_required"
    assert handler.ehlo_names == []


@pytest.fixture
def silent_port():
    """A server that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()


@override_settings(SMTP_CONNECT_TIMEOUT=0.3, SMTP_TOTAL_TIMEOUT=1.0)
def test_a_silent_server_times_out_and_the_configuration_backs_off(school, silent_port, installation, north_staff):
    row = settings_for(installation, silent_port)
    overdue(school, "Ana Lima", "ana@example.org", "Dune")
    queue_overdue(school, north_staff)
    started = time.monotonic()
    worker.deliver(row.pk)
    assert time.monotonic() - started < 5
    notice = Notice.objects.get()
    assert notice.status == NoticeStatus.QUEUED and notice.last_category == "timeout"
    assert notice.next_attempt_at > timezone.now()
    assert DeliveryState.objects.get(smtp_settings=row).busy_streak == 1


SINK = "/usr/sbin/smtp-sink"


@pytest.fixture
def sink_dir():
    """A directory smtp-sink (running as nobody) can write its dump into."""
    path = Path(tempfile.mkdtemp(prefix="smtp-sink-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sink(sink_dir):
    """Postfix's smtp-sink with fault options, dumping what it receives into `sink_dir`."""
    processes = []

    def start(*options):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        dump = ["-D", str(sink_dir / "dump")]
        process = subprocess.Popen([SINK, *user, *dump, *options, f"127.0.0.1:{port}", "64"], stderr=subprocess.PIPE)
        processes.append(process)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return port
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("smtp-sink did not start")

    yield start
    for process in processes:
        process.terminate()
        process.wait()


def received_message_ids(directory):
    dump = directory / "dump"
    if not dump.exists():
        return []
    return [line.split(":", 1)[1].strip() for line in dump.read_text().splitlines() if line.startswith("Message-ID:")]


@pytest.mark.skipif(not os.path.exists(SINK), reason="needs Postfix's smtp-sink")
def test_pipelined_delivery_into_smtp_sink_sends_every_notice_once(school, sink, sink_dir, installation, north_staff):
    row = settings_for(installation, sink())
    for i in range(60):
        overdue(school, f"Patron {i}", f"p{i}@example.org", "Dune")
    queue_overdue(school, north_staff)
    with override_settings(DELIVERY_BATCH=25):
        worker.deliver(row.pk)
    assert Notice.objects.filter(status=NoticeStatus.SENT).count() == 60
    assert sorted(received_message_ids(sink_dir)) == sorted(Notice.objects.values_list("message_id", flat=True))


@pytest.mark.skipif(not os.path.exists(SINK), reason="needs Postfix's smtp-sink")
def test_a_connection_lost_after_the_final_dot_is_retried_with_the_same_message_id_and_counted(
    school, sink, installation, north_staff, handler, server
):
    row = settings_for(installation, sink("-q", "."))
    overdue(school, "Ana Lima", "ana@example.org", "Dune")
    overdue(school, "Bo Chen", "bo@example.org", "Emma")
    queue_overdue(school, north_staff)
    worker.deliver(row.pk)
    first = Notice.objects.get(attempts=1)
    assert first.status == NoticeStatus.QUEUED and first.possible_duplicates == 1
    assert first.attempts_log.get().outcome == AttemptOutcome.UNCONFIRMED
    assert Notice.objects.get(attempts=0).status == NoticeStatus.QUEUED

    row.port = server.port
    row.save()
    DeliveryState.objects.all().delete()
    Notice.objects.update(next_attempt_at=timezone.now())
    worker.deliver(row.pk)
    message_ids = set(Notice.objects.values_list("message_id", flat=True))
    assert {m.message["Message-ID"] for m in handler.messages} == message_ids
    assert set(Notice.objects.values_list("status", flat=True)) == {NoticeStatus.SENT}


@pytest.mark.skipif(not os.path.exists(SINK), reason="needs Postfix's smtp-sink")
def test_smtp_sink_soft_and_hard_rcpt_rejections_defer_and_fail(school, sink, installation, north_staff):
    soft = settings_for(installation, sink("-r", "RCPT"))
    overdue(school, "Ana Lima", "ana@example.org", "Dune")
    queue_overdue(school, north_staff)
    worker.deliver(soft.pk)
    notice = Notice.objects.get()
    assert notice.status == NoticeStatus.QUEUED and notice.last_reply.startswith("450")

    soft.port = sink("-f", "RCPT")
    soft.save()
    DeliveryState.objects.all().delete()
    Notice.objects.update(next_attempt_at=timezone.now())
    worker.deliver(soft.pk)
    notice.refresh_from_db()
    assert notice.status == NoticeStatus.FAILED and notice.last_reply.startswith("500")


@override_settings(DELIVERY_CAP_WINDOW=1)
def test_the_hourly_cap_holds_back_what_exceeds_it_until_the_window_moves(school, handler, row, north_staff):
    row.max_per_hour = 3
    row.save()
    for i in range(5):
        overdue(school, f"Patron {i}", f"p{i}@example.org", "Dune")
    queue_overdue(school, north_staff)
    worker.deliver(row.pk)
    assert Notice.objects.filter(status=NoticeStatus.SENT).count() == 3
    assert cap.usage(row).used == 3 and cap.usage(row).next_free_at is not None
    time.sleep(1.1)
    worker.deliver(row.pk)
    assert Notice.objects.filter(status=NoticeStatus.SENT).count() == 5
    assert len(handler.messages) == 5


def test_test_emails_count_toward_the_cap_of_the_consortium_shared_by_districts(
    school, south, handler, row, north_staff
):
    row.max_per_hour = 2
    row.save()
    assert cap.try_reserve(row.pk) is None
    assert cap.try_reserve(row.pk) is None
    next_free = cap.try_reserve(row.pk)
    assert next_free is not None and next_free > timezone.now()
    overdue(school, "Ana Lima", "ana@example.org", "Dune")
    queue_overdue(school, north_staff)
    worker.deliver(row.pk)
    assert handler.messages == [] and Notice.objects.get().status == NoticeStatus.QUEUED


def test_divert_all_sends_every_message_to_one_address_naming_the_real_recipient(
    school, handler, row, installation, north_staff
):
    installation.divert_all_to = "qa@example.org"
    installation.save()
    overdue(school, "Ana Lima", "ana@example.org", "Dune")
    queue_overdue(school, north_staff)
    worker.deliver(row.pk)
    received = handler.messages[0]
    assert received.rcpt_tos == ("qa@example.org",)
    assert "addressed to ana@example.org" in received.message.get_body(("plain",)).get_content()


def test_notices_left_behind_by_a_dead_worker_go_out_after_the_lease_and_are_counted(school, handler, row, north_staff):
    overdue(school, "Ana Lima", "ana@example.org", "Dune")
    queue_overdue(school, north_staff)
    Notice.objects.update(status=NoticeStatus.SENDING, lease_until=timezone.now() - dt.timedelta(seconds=1))
    worker.deliver(row.pk)
    notice = Notice.objects.get()
    assert notice.status == NoticeStatus.SENT and notice.possible_duplicates == 1
    assert len(handler.messages) == 1


def booked_together() -> list[int]:
    """How many attempts each booking wrote, in order (one booking writes its rows with one timestamp)."""
    return [count for _, count in sorted(Counter(DeliveryAttempt.objects.values_list("at", flat=True)).items())]


def test_outcomes_are_booked_every_few_messages_not_once_per_batch(school, handler, row, north_staff, monkeypatch):
    monkeypatch.setattr(worker, "BOOK_EVERY", 4)
    monkeypatch.setattr(worker, "BOOK_WITHIN", 60.0)
    for i in range(10):
        overdue(school, f"Patron {i}", f"p{i}@example.org", "Dune")
    queue_overdue(school, north_staff)
    worker.deliver(row.pk)
    assert booked_together() == [4, 4, 2]
    assert len(handler.messages) == 10 and set(Notice.objects.values_list("status", flat=True)) == {NoticeStatus.SENT}


def test_a_slow_server_gets_its_outcomes_booked_within_the_chunk_time(school, handler, row, north_staff, monkeypatch):
    delay = 0.02
    handler.on_message = lambda received: time.sleep(delay)
    monkeypatch.setattr(worker, "BOOK_WITHIN", 0.05)
    for i in range(12):
        overdue(school, f"Patron {i}", f"p{i}@example.org", "Dune")
    queue_overdue(school, north_staff)
    worker.deliver(row.pk)
    groups = booked_together()
    # The first message and those started before the chunk's time is up: at most one more than fit in it.
    assert sum(groups) == 12 and max(groups) <= worker.BOOK_WITHIN / delay + 2 and len(groups) >= 3
    received = [m.message["Message-ID"] for m in handler.messages]
    assert sorted(received) == sorted(Notice.objects.values_list("message_id", flat=True)), "each sent exactly once"
    assert set(Notice.objects.values_list("status", "attempts")) == {(NoticeStatus.SENT, 1)}


def test_a_notice_past_the_give_up_age_fails_with_its_reason(school, handler, row, north_staff):
    handler.replies["RCPT"] = "452 4.2.2 Mailbox full"
    overdue(school, "Ana Lima", "ana@example.org", "Dune")
    queue_overdue(school, north_staff)
    Notice.objects.update(queued_at=timezone.now() - dt.timedelta(days=4))
    worker.deliver(row.pk)
    notice = Notice.objects.get()
    assert notice.status == NoticeStatus.FAILED and notice.gave_up and notice.last_category == "temporary_failure"
    assert notice.problem == "Gave up after 1 attempt: The server asked to try again later"


def test_notices_past_the_give_up_age_behind_an_unreachable_server_fail_with_its_cause(
    school, installation, north_staff
):
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    row = settings_for(installation, port)
    overdue(school, "Ana Lima", "ana@example.org", "Dune")
    queue_overdue(school, north_staff)
    Notice.objects.update(queued_at=timezone.now() - dt.timedelta(days=4))

    worker.deliver(row.pk)

    notice = Notice.objects.get()
    assert notice.status == NoticeStatus.FAILED and notice.gave_up and notice.attempts == 0
    assert notice.problem == "Gave up waiting for the server: The server refused the connection"


def test_the_sweep_enqueues_delivery_for_due_notices_by_id_only(school, row, north_staff):
    from django_tasks_db.models import DBTaskResult

    overdue(school, "Ana Lima", "ana@example.org", "Dune")
    queue_overdue(school, north_staff)
    tasks.sweep.call()
    task = DBTaskResult.objects.get(task_path="settings_app.tasks.deliver")
    assert task.args_kwargs == {"args": [row.pk], "kwargs": {}}
    assert DBTaskResult.objects.filter(task_path="settings_app.tasks.sweep", status="READY").count() == 1


def test_the_pipelined_sender_keeps_going_after_a_refused_recipient(handler, server):
    from settings_app.delivery.pipeline import Outgoing, PipelinedSender

    handler.refused["no@example.org"] = "550 5.1.1 No such user"
    body = b"Subject: hi\r\nMessage-ID: <%d@x>\r\n\r\n.\r\nbye\r\n"

    async def run():
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await reader.readline()
        writer.write(b"EHLO client.example.org\r\n")
        while not (await reader.readline()).startswith(b"250 "):
            pass
        sender = PipelinedSender(cast(asyncio.Transport, writer.transport), pipelining=True, timeout=5)
        messages = [Outgoing(i, f"{name}@example.org", body % i) for i, name in enumerate(["a", "no", "b"])]
        results = await sender.send("me@example.org", messages)
        writer.close()
        return results

    results = asyncio.run(run())
    assert [(r.accepted, r.code) for r in results] == [(True, 250), (False, 550), (True, 250)]
    assert [m.rcpt_tos for m in handler.messages] == [("a@example.org",), ("b@example.org",)]
    assert all(m.message.get_content().replace("\r\n", "\n") == ".\nbye\n" for m in handler.messages)


@pytest.mark.parametrize(
    ("server_name", "transport", "category"),
    [
        ("expired_cert", "tls", "cert_expired"),
        ("untrusted_cert", "tls", "cert_untrusted"),
        ("wrong_name_cert", "ssl", "cert_hostname"),
    ],
)
def test_a_certificate_failure_pauses_the_configuration_and_the_notices_wait(
    school, installation, smtp_ca, north_staff, request, server_name, transport, category
):
    server = request.getfixturevalue(f"{server_name}_server")
    installation.ca_bundle = smtp_ca.pem
    installation.save()
    row = settings_for(
        installation, server.port, host="localhost", transport=transport, username=USERNAME, password=PASSWORD
    )
    overdue(school, "Ana Lima", "ana@example.org", "Dune")
    queue_overdue(school, north_staff)

    worker.deliver(row.pk)
    worker.deliver(row.pk)  # paused: not tried again

    row.refresh_from_db()
    notice = Notice.objects.get()
    assert row.paused_at is not None and row.pause_category == category
    assert notice.status == NoticeStatus.QUEUED and notice.attempts == 0 and notice.failed_at is None
    assert not DeliveryAttempt.objects.exists()
    assert server.recorded.logins == [] and server.recorded.messages == []


def test_the_cap_use_of_many_configurations_is_read_in_one_query_and_matches_each_ones(
    installation, django_assert_num_queries
):
    from settings_app.models import MailSource

    rows = [
        factories.smtp_settings(district=factories.district(mail_source=MailSource.OWN), max_per_hour=limit)
        for limit in (5, 2, 10)
    ]
    cap.reserve(rows[0].pk, wanted=3, hold=dt.timedelta(0))
    cap.reserve(rows[1].pk, wanted=2, hold=dt.timedelta(0))  # at its cap: the next free slot is read too
    with django_assert_num_queries(3):
        usages = cap.usages(rows)
    assert usages == {row.pk: cap.usage(row) for row in rows}
    assert [usages[row.pk].used for row in rows] == [3, 2, 0] and usages[rows[1].pk].next_free_at is not None


def test_a_sweep_left_running_by_a_killed_worker_is_replaced_but_a_live_one_is_not(db):
    from django.tasks import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    tasks.ensure_sweep()
    sweeps = DBTaskResult.objects.filter(task_path="settings_app.tasks.sweep")
    sweeps.update(status=TaskResultStatus.RUNNING, started_at=timezone.now())
    tasks.ensure_sweep()
    assert sweeps.count() == 1, "a sweep that is running now was started again"
    sweeps.update(started_at=timezone.now() - tasks.SWEEP_DEAD_AFTER - dt.timedelta(seconds=1))
    tasks.ensure_sweep()
    assert sweeps.filter(status=TaskResultStatus.READY).count() == 1


def test_back_off_stays_at_its_ceiling_however_long_a_server_keeps_failing(settings):
    from settings_app.delivery import policy

    settings.DELIVERY_BUSY_BASE, settings.DELIVERY_BUSY_MAX = 30, 1800
    settings.DELIVERY_RETRY_BASE, settings.DELIVERY_RETRY_MAX = 60, 3600
    for failures in (1, 47, 1000, 32_767):
        assert dt.timedelta(seconds=15) <= policy.busy_delay(failures) <= dt.timedelta(seconds=1800)
        assert dt.timedelta(seconds=30) <= policy.retry_delay(failures) <= dt.timedelta(seconds=3600)
    assert policy.busy_delay(100) >= dt.timedelta(seconds=900), "past the ceiling it waits the ceiling (jittered)"
