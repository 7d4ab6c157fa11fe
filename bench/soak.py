"""Soak: notices through several `db_worker` processes on PostgreSQL, each killed with SIGKILL at random and
restarted, while the SMTP server answers 421, 451, 452 and 550 and drops connections, some after the final dot.
At the end it counts what was lost, what arrived twice, what was counted as a possible duplicate, and how often any
configuration's hourly cap (here a shorter window) was exceeded in any rolling window.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/dm_scale_soak .venv/bin/python bench/soak.py \\
        [-n 20000] [--workers 3] [--configurations 4] [--kill-every 5 20] [--window 20] [--cap 1500]

It creates its own districts, schools, patrons and settings (self-hosted installation, 127.0.0.0/8 allowed) and
deletes them at the end. Bounded by --limit seconds (default 900). The server is aiosmtpd in this process, on
127.0.0.1. The last line reads: lost=<n> duplicates=<n> unexplained_duplicates=<n> possible_duplicates=<n>
cap_excess=<n> failed_without_reason=<n>; every count but the possible duplicates (and the duplicates they explain)
must be 0.
"""

import argparse
import logging
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from notices import installation, vacuum  # noqa: E402 (the bench folder is on the path when run)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "destiny_mail.settings")

import django  # noqa: E402

django.setup()

import datetime as dt  # noqa: E402

from aiosmtpd.smtp import SMTP, Envelope, Session  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.utils import timezone  # noqa: E402

from settings_app.delivery import queue  # noqa: E402
from settings_app.mail.localserver.smtp import LocalController  # noqa: E402
from settings_app.models import (  # noqa: E402
    District,
    Loan,
    MailSource,
    Notice,
    NoticeStatus,
    Patron,
    School,
    SmtpSettings,
)

REFUSED_EVERY = 97  # every 97th patron's address is refused for good (550 5.1.1): those notices must fail


class FaultyHandler:
    """Accepts mail, but now and then answers 421 (and closes), 451 or 452, drops the connection before or after
    the final dot, and refuses some addresses for good. Notes (time, Message-ID, sender) for what arrived."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.arrivals: list[tuple[float, str, str]] = []
        self.faults: Counter[str] = Counter()

    def _roll(self, chance: float, name: str) -> bool:
        hit = self.rng.random() < chance
        if hit:
            self.faults[name] += 1
        return hit

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, options) -> str:
        if self._roll(0.005, "421 on MAIL"):
            return "421 4.7.0 Too busy, closing"  # the client must close the connection and back off
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options) -> str:
        if address.startswith("refused"):
            return "550 5.1.1 No such user"
        if self._roll(0.01, "451 on RCPT"):
            return "451 4.3.0 Try again later"
        if self._roll(0.005, "452 on RCPT"):
            return "452 4.2.2 Mailbox full, try later"
        if self._roll(0.002, "disconnect before DATA"):
            server.transport.close()  # type: ignore[union-attr]
            return "250 OK"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message_id = ""
        for line in envelope.original_content.split(b"\r\n") if envelope.original_content else []:
            if line.lower().startswith(b"message-id:"):
                message_id = line.split(b":", 1)[1].strip().decode()
                break
        self.arrivals.append((time.monotonic(), message_id, str(envelope.mail_from)))
        if self._roll(0.003, "disconnect after the final dot"):
            server.transport.close()  # type: ignore[union-attr]
        return "250 2.0.0 OK"


def make_scopes(configurations: int, n: int, port: int, cap: int) -> list[School]:
    tag = secrets.token_hex(3)
    found = installation()
    schools = []
    due = timezone.localdate() - dt.timedelta(days=5)
    for index in range(configurations):
        district = District.objects.create(
            installation=found, name=f"Soak {tag} {index}", slug=f"soak-{tag}-{index}", mail_source=MailSource.OWN
        )
        school = School.objects.create(district=district, name=f"Soak {tag} {index}", slug=f"soak-{tag}-s{index}")
        SmtpSettings.objects.create(
            district=district,
            host="127.0.0.1",
            port=port,
            transport="none",
            from_name="Soak Library",
            from_email=f"library{index}@soak.example.org",
            max_per_hour=cap,
        )
        share = n // configurations + (1 if index < n % configurations else 0)
        patrons = Patron.objects.bulk_create(
            Patron(
                school=school,
                name=f"Patron {i}",
                email=f"{'refused' if i % REFUSED_EVERY == 0 else 'p'}{i}.{index}@soak.example.org",
            )
            for i in range(share)
        )
        Loan.objects.bulk_create(Loan(patron=patron, title="Dune", due_on=due) for patron in patrons)
        schools.append(school)
    return schools


def worker_env(args: argparse.Namespace) -> dict[str, str]:
    return {
        **os.environ,
        "LOG_LEVEL": "WARNING",
        "DELIVERY_CAP_WINDOW": str(args.window),
        "DELIVERY_LEASE": "10",
        "SMTP_TOTAL_TIMEOUT": "2",
        "SMTP_CONNECT_TIMEOUT": "2",
        "DELIVERY_RETRY_BASE": "1",
        "DELIVERY_RETRY_MAX": "5",
        "DELIVERY_BUSY_BASE": "1",
        "DELIVERY_BUSY_MAX": "5",
        "DELIVERY_SWEEP_INTERVAL": "2",
        "DELIVERY_BATCH": "200",
    }


def start_worker(env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, str(ROOT / "manage.py"), "db_worker", "--no-startup-delay", "--no-reload"]
    return subprocess.Popen([*command, "--interval", "0.2", "-v", "0"], env=env)


def unfinished(schools: list[School]) -> int:
    return Notice.objects.filter(school__in=schools, status__in=[NoticeStatus.QUEUED, NoticeStatus.SENDING]).count()


def run(args: argparse.Namespace, schools: list[School], rng: random.Random) -> tuple[int, float]:
    """Workers killed at random and restarted until every notice is sent or failed (or --limit); returns kills."""
    env = worker_env(args)
    low, high = args.kill_every
    workers = [start_worker(env) for _ in range(args.workers)]
    kill_at = [time.monotonic() + rng.uniform(low, high) for _ in workers]
    kills, started = 0, time.monotonic()
    user, _ = User.objects.get_or_create(username="benchmark")
    for school in schools:
        queue.notices_queue_overdue(school=school, acting_user=user)
    try:
        while unfinished(schools) and time.monotonic() - started < args.limit:
            now = time.monotonic()
            for index, process in enumerate(workers):
                if now >= kill_at[index]:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                    workers[index] = start_worker(env)
                    kill_at[index] = now + rng.uniform(low, high)
                    kills += 1
            time.sleep(0.2)
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return kills, time.monotonic() - started


def cap_excess(arrivals: list[tuple[float, str, str]], window: float, cap: int) -> int:
    """Messages beyond the cap in the busiest rolling window of each configuration (0 when it held)."""
    excess = 0
    by_sender: dict[str, list[float]] = defaultdict(list)
    for at, _, sender in arrivals:
        by_sender[sender].append(at)
    for times in by_sender.values():
        times.sort()
        first = 0
        busiest = 0
        for last, at in enumerate(times):
            while times[first] <= at - window:
                first += 1
            busiest = max(busiest, last - first + 1)
        excess += max(busiest - cap, 0)
    return excess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--configurations", type=int, default=4)
    parser.add_argument("--kill-every", type=float, nargs=2, default=[5, 20], metavar=("LOW", "HIGH"))
    parser.add_argument("--window", type=int, default=20, help="the cap's rolling window, seconds (default 20)")
    parser.add_argument("--cap", type=int, default=1500, help="messages per window per configuration")
    parser.add_argument("--limit", type=float, default=900)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("The soak needs PostgreSQL (SKIP LOCKED, concurrent workers): set DATABASE_URL=postgres://...")
    call_command("migrate", verbosity=0)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's line per connection
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    rng = random.Random(seed)  # noqa: S311 (faults and kill times, not secrets)
    handler = FaultyHandler(rng)
    server = LocalController(handler)
    server.start()
    # A run that was itself killed leaves its scopes behind, pointing at a server that is gone: remove them first.
    leftovers = District.objects.filter(name__startswith="Soak ", slug__startswith="soak-")
    Notice.objects.filter(school__district__in=leftovers).delete()
    leftovers.delete()
    schools = make_scopes(args.configurations, args.n, server.port, args.cap)
    try:
        kills, took = run(args, schools, rng)
        report(args, schools, handler, kills, took, seed)
    finally:
        server.stop()
        Notice.objects.filter(school__in=schools).delete()
        District.objects.filter(pk__in=[school.district_id for school in schools]).delete()
        vacuum()


def report(args, schools, handler: FaultyHandler, kills: int, took: float, seed: int) -> None:
    notices = Notice.objects.filter(school__in=schools)
    statuses = dict(notices.order_by().values_list("status").annotate(n=Count("id")))
    arrived = Counter(message_id for _, message_id, _ in handler.arrivals)
    sent_ids = set(notices.filter(status=NoticeStatus.SENT).values_list("message_id", flat=True))
    lost = unfinished(schools) + len(sent_ids - set(arrived))
    failed = notices.filter(status=NoticeStatus.FAILED)
    wrongly_failed = failed.exclude(recipient_email__startswith="refused").count()
    failed_without_reason = failed.filter(last_category="").count()
    possible = dict(notices.filter(possible_duplicates__gt=0).values_list("message_id", "possible_duplicates"))
    duplicates = sum(count - 1 for count in arrived.values())
    unexplained = sum(max(count - 1 - possible.get(message_id, 0), 0) for message_id, count in arrived.items())
    excess = cap_excess(handler.arrivals, args.window, args.cap)
    print(f"seed {seed}: {args.n:,} notices, {args.workers} workers, {kills} SIGKILLs, {took:.0f} s")
    print(f"faults injected: {dict(handler.faults)}")
    print(f"notices by status: {statuses}; failed other than the refused addresses: {wrongly_failed}")
    print(
        f"lost={lost} duplicates={duplicates} unexplained_duplicates={unexplained} "
        f"possible_duplicates={sum(possible.values())} cap_excess={excess} "
        f"failed_without_reason={failed_without_reason}"
    )


if __name__ == "__main__":
    main()
