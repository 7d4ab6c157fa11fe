"""Several real worker processes (`manage.py db_worker`) on one PostgreSQL queue, delivering to aiosmtpd on 127.0.0.1.

The workers are subprocesses pointed at the test database; the server, in this process, notes when each message
arrived, its Message-ID and the connection it came over.
"""

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from settings_app.delivery import queue, worker
from settings_app.mail.localserver import RecordingHandler, smtp_server
from settings_app.models import Loan, Notice, NoticeStatus, Patron, SmtpSettings
from settings_app.tasks import deliver
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2025, 3, 10)


class Arrivals(RecordingHandler):
    """Notes (monotonic time, Message-ID, client port) for every message, then answers after `delay` seconds."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.port = 0
        self.arrivals: list[tuple[float, str, str]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        self.arrivals.append((time.monotonic(), str(self.messages[-1].message["Message-ID"]), str(session.peer)))
        if self.delay:
            await asyncio.sleep(self.delay)
        return reply

    def message_ids(self) -> Counter[str]:
        return Counter(message_id for _, message_id, _ in self.arrivals)


@pytest.fixture
def arrivals() -> Iterator[Arrivals]:
    handler = Arrivals()
    controller = smtp_server(handler)
    handler.port = controller.port
    yield handler
    controller.stop()


@pytest.fixture
def workers() -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `manage.py db_worker` processes on the test database; `settings` become environment variables."""
    started: list[subprocess.Popen] = []

    def start(*options: str, **settings: object) -> subprocess.Popen:
        db = connection.settings_dict
        url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
        env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING", **{k: str(v) for k, v in settings.items()}}
        command = [sys.executable, "manage.py", "db_worker", "--no-startup-delay", "--no-reload", *options]
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def queue_notices(installation, port: int, count: int, **fields) -> SmtpSettings:
    """`count` overdue notices queued through a consortium configuration pointing at `port`; returns it."""
    school = factories.school(factories.district("North"), "North High")
    row = factories.smtp_settings(
        installation=installation, host="127.0.0.1", port=port, from_email="library@north.example.org", **fields
    )
    patrons = Patron.objects.bulk_create(
        Patron(school=school, name=f"Patron {i}", email=f"p{i}@example.org") for i in range(count)
    )
    Loan.objects.bulk_create(Loan(patron=p, title="Dune", due_on=TODAY - dt.timedelta(days=3)) for p in patrons)
    queue.notices_queue_overdue(school=school, acting_user=factories.user(), today=TODAY)
    return row


def wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"still waiting after {seconds} s")
        time.sleep(0.05)


def finish(process: subprocess.Popen, seconds: float = 20) -> None:
    _, errors = process.communicate(timeout=seconds)
    assert process.returncode == 0, errors.decode()


def test_several_worker_processes_deliver_every_notice_exactly_once(installation, arrivals, workers):
    row = queue_notices(installation, arrivals.port, 200)
    for _ in range(2):
        deliver.enqueue(row.pk)  # one task per worker, besides the one the staff action enqueued
    arrivals.delay = 0.002

    processes = [workers("--batch", DELIVERY_BATCH=10) for _ in range(3)]
    for process in processes:
        finish(process)

    received = arrivals.message_ids()
    assert sorted(received) == sorted(Notice.objects.values_list("message_id", flat=True))
    assert set(received.values()) == {1}, "a message arrived twice"
    assert set(Notice.objects.values_list("status", "possible_duplicates")) == {(NoticeStatus.SENT, 0)}
    connections = Counter(peer for _, _, peer in arrivals.arrivals)
    assert len(connections) >= 2, f"one worker did everything: {connections}"


def test_a_worker_killed_in_the_middle_of_a_batch_loses_nothing_and_counts_what_may_repeat(
    installation, arrivals, workers
):
    row = queue_notices(installation, arrivals.port, 60)
    delay = arrivals.delay = 0.05  # a batch of 20 takes a second: long enough to die in the middle of one
    process = workers("--batch", DELIVERY_BATCH=20, DELIVERY_LEASE=6, SMTP_TOTAL_TIMEOUT=1)

    wait_for(lambda: len(arrivals.arrivals) >= 25, seconds=15)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=5)
    arrivals.delay = 0
    abandoned = set(Notice.objects.filter(status=NoticeStatus.SENDING).values_list("message_id", flat=True))
    before = arrivals.message_ids()
    assert abandoned and Notice.objects.filter(status=NoticeStatus.SENT).count() < 60

    lease_end = Notice.objects.filter(status=NoticeStatus.SENDING).aggregate(end=Max("lease_until"))["end"]
    assert lease_end is not None
    worker.deliver(row.pk)  # the rest goes out; what the dead worker holds waits for its lease to end
    assert set(Notice.objects.exclude(status=NoticeStatus.SENT).values_list("message_id", flat=True)) == abandoned
    assert all(arrivals.message_ids()[message_id] == before[message_id] for message_id in abandoned)

    wait_for(lambda: timezone.now() > lease_end, seconds=10)
    worker.deliver(row.pk)

    received = arrivals.message_ids()
    notices = {n.message_id: n for n in Notice.objects.all()}
    assert set(received) == set(notices), "a notice was lost"
    assert {n.status for n in notices.values()} == {NoticeStatus.SENT}
    repeated = {message_id: count for message_id, count in received.items() if count > 1}
    assert set(repeated) <= abandoned & set(before), "only what the killed worker had sent may arrive again"
    # Outcomes are booked at least every BOOK_WITHIN seconds, so only the last chunk's few messages may repeat.
    assert len(repeated) <= worker.BOOK_WITHIN / delay + 2
    assert all(notices[message_id].possible_duplicates >= count - 1 for message_id, count in repeated.items())
    assert {n.possible_duplicates for m, n in notices.items() if m not in abandoned} == {0}


def test_the_cap_holds_in_every_window_across_several_workers(installation, arrivals, workers):
    cap, window, count = 4, 1, 12
    row = queue_notices(installation, arrivals.port, count, max_per_hour=cap)
    for _ in range(2):
        deliver.enqueue(row.pk)

    for _ in range(3):
        workers("--interval", "0.1", DELIVERY_BATCH=2, DELIVERY_CAP_WINDOW=window)
    wait_for(lambda: not Notice.objects.exclude(status=NoticeStatus.SENT).exists(), seconds=20)

    times = sorted(at for at, _, _ in arrivals.arrivals)
    assert len(times) == count and set(arrivals.message_ids().values()) == {1}
    busiest = max(sum(1 for other in times if start <= other < start + window) for start in times)
    assert busiest <= cap
    assert times[-1] - times[0] >= 2 * window, "the cap held nothing back"
