"""A short soak (bench/soak.py is the long one): worker processes on PostgreSQL, one killed with SIGKILL in the
middle and restarted, against a real SMTP server on 127.0.0.1 that answers 421, 451, 452 and 550 and drops
connections before and after the final dot. Nothing is lost, a duplicate is always one that was counted as possible,
failures carry their reason, and the hourly cap (a two-second window here) holds in every rolling window.
"""

import datetime as dt
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from settings_app.delivery import queue
from settings_app.mail.localserver.smtp import LocalController
from settings_app.models import Loan, MailSource, Notice, NoticeStatus, Patron
from tests import factories
from tests.test_delivery_concurrency import wait_for, workers  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

TODAY = dt.date(2025, 3, 10)
WINDOW, CAP = 2, 60
# Each fault hits a given address the first time it is tried, so every kind happens and each must be recovered from.
FIRST_TRY_FAULTS = {7: "451", 11: "452", 13: "drop before DATA", 17: "drop after the dot"}
REFUSED = 19  # these addresses are refused for good (550 5.1.1)
FAULT_EVERY = 29


def fault_of(address: str) -> str:
    number = int(address.split("@")[0].split(".")[0].lstrip("p"))
    if number % FAULT_EVERY == REFUSED:
        return "550"
    if number == 3:
        return "421"  # rarely: each one holds its whole configuration back for a second or two
    return FIRST_TRY_FAULTS.get(number % FAULT_EVERY, "")


class FaultyServer:
    """Notes (monotonic time, Message-ID, sender) for each message that arrived; injects each address's fault once."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str, str]] = []
        self.tried: set[str] = set()

    def _first_fault(self, address: str, kinds: set[str]) -> str:
        fault = fault_of(address)
        if fault == "550":
            return fault
        if fault in kinds and address not in self.tried:
            self.tried.add(address)
            return fault
        return ""

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options) -> str:
        fault = self._first_fault(address, {"421", "451", "452", "drop before DATA"})
        if fault == "drop before DATA":
            server.transport.close()  # type: ignore[union-attr]
        replies = {"550": "550 5.1.1 No such user", "451": "451 4.3.0 Try later", "452": "452 4.2.2 Mailbox full"}
        if fault == "421":
            return "421 4.7.0 Too busy, closing"
        if fault in replies:
            return replies[fault]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message_id = next(
            line.split(b":", 1)[1].strip().decode()
            for line in content.split(b"\r\n")
            if line.lower().startswith(b"message-id:")
        )
        self.arrivals.append((time.monotonic(), message_id, str(envelope.mail_from)))
        if self._first_fault(envelope.rcpt_tos[0], {"drop after the dot"}):
            server.transport.close()  # type: ignore[union-attr]
        return "250 2.0.0 OK"


@pytest.fixture
def faulty() -> Iterator[tuple[FaultyServer, int]]:
    handler = FaultyServer()
    controller = LocalController(handler)
    controller.start()
    yield handler, controller.port
    controller.stop()


def queue_for(port: int, index: int, count: int) -> None:
    district = factories.district(f"Soak {index}", mail_source=MailSource.OWN)
    school = factories.school(district, f"Soak School {index}")
    factories.smtp_settings(
        district=district, host="127.0.0.1", port=port, from_email=f"library{index}@soak.example.org", max_per_hour=CAP
    )
    patrons = Patron.objects.bulk_create(
        Patron(school=school, name=f"Patron {i}", email=f"p{i}.{index}@soak.example.org") for i in range(count)
    )
    Loan.objects.bulk_create(Loan(patron=p, title="Dune", due_on=TODAY - dt.timedelta(days=3)) for p in patrons)
    queue.notices_queue_overdue(school=school, acting_user=factories.user(), today=TODAY)


def busiest_window(arrivals: list[tuple[float, str, str]]) -> int:
    by_sender: dict[str, list[float]] = defaultdict(list)
    for at, _, sender in arrivals:
        by_sender[sender].append(at)
    return max(
        sum(1 for other in times if start <= other < start + WINDOW) for times in by_sender.values() for start in times
    )


def test_workers_killed_mid_run_against_a_faulty_server_lose_nothing_and_count_every_duplicate(
    installation,
    faulty,
    workers,  # noqa: F811 (the fixture imported above)
    settings,
):
    settings.DELIVERY_SWEEP_INTERVAL = 1  # the sweep the staff action starts here, as in the workers
    server, port = faulty
    for index in range(2):
        queue_for(port, index, 100)
    settings = {
        "DELIVERY_BATCH": 20,
        "DELIVERY_LEASE": 4,
        "SMTP_TOTAL_TIMEOUT": 0.7,
        "SMTP_CONNECT_TIMEOUT": 0.7,
        "DELIVERY_RETRY_BASE": 1,
        "DELIVERY_RETRY_MAX": 2,
        "DELIVERY_BUSY_BASE": 1,
        "DELIVERY_BUSY_MAX": 2,
        "DELIVERY_SWEEP_INTERVAL": 1,
        "DELIVERY_CAP_WINDOW": WINDOW,
    }
    victim = workers("--interval", "0.1", **settings)
    workers("--interval", "0.1", **settings)

    wait_for(lambda: len(server.arrivals) >= 50, seconds=20)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=5)
    workers("--interval", "0.1", **settings)
    unfinished = Notice.objects.filter(status__in=[NoticeStatus.QUEUED, NoticeStatus.SENDING])
    wait_for(lambda: not unfinished.exists(), seconds=40)

    notices = {n.message_id: n for n in Notice.objects.all()}
    arrived = Counter(message_id for _, message_id, _ in server.arrivals)
    sent = {m for m, n in notices.items() if n.status == NoticeStatus.SENT}
    failed = [n for n in notices.values() if n.status == NoticeStatus.FAILED]
    assert sent == set(arrived), "a notice marked sent never arrived, or one arrived that is not marked sent"
    assert sorted(n.recipient_email for n in failed) == sorted(
        n.recipient_email for n in notices.values() if fault_of(n.recipient_email) == "550"
    )
    assert all("550 5.1.1" in n.last_reply and n.last_category for n in failed), "a failure without its reason"
    assert all(arrived[m] - 1 <= notices[m].possible_duplicates for m in arrived), "an uncounted duplicate"
    dropped_after_dot = [m for m, n in notices.items() if fault_of(n.recipient_email) == "drop after the dot"]
    assert all(arrived[m] >= 2 and notices[m].possible_duplicates >= 1 for m in dropped_after_dot)
    retried = [n for n in notices.values() if fault_of(n.recipient_email) in {"421", "451", "452", "drop before DATA"}]
    # Tried at least twice: booked twice, or once lost with the killed worker and claimed again (counted).
    assert retried and all(n.status == NoticeStatus.SENT for n in retried)
    assert all(n.attempts >= 2 or n.possible_duplicates >= 1 for n in retried)
    assert busiest_window(server.arrivals) <= CAP
