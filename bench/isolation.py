"""Benchmark: one broken server never delays the others. 200 SMTP configurations on 127.0.0.1, of which 20 point at
servers that accept the connection and never write, 10 at servers that answer every command after 2 s, and the
rest at Postfix's smtp-sink; two `db_worker` processes drain the queue. It prints the healthy configurations'
queue-to-sent p50/p95 beside the same run without the broken servers (only the healthy configurations).

    .venv/bin/python bench/isolation.py [--configurations 200] [--silent 20] [--slow 10] [-n 4] [--workers 2]
                                        [--rate 15] [--repeat 1] [--detail]

It uses the configured database (DATABASE_URL), creates its own districts and settings (self-hosted installation,
127.0.0.0/8 allowed) and deletes them at the end. Bounded: each run is stopped after --limit seconds (default 300). The
workers start (and finish Django's setup) before the notices are queued, one school after another at --rate
schools a second (as staff would, and below what the workers can send, so queue-to-sent measures waiting behind
other work rather than a backlog), and stop once everything is sent. With --repeat, reference and broken runs
alternate and the medians are compared (other work on the machine shifts single runs a lot). PostgreSQL is
VACUUM ANALYZEd before each run, so both plan alike.
The last line reads: healthy_p95_s=<s> reference_p95_s=<s> ratio=<r> lost=<n>
"""

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from notices import installation, smtp_sink, vacuum  # noqa: E402 (the bench folder is on the path when run)
from serving import free_port  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "destiny_mail.settings")

import django  # noqa: E402

django.setup()

import datetime as dt  # noqa: E402

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_tasks_db.models import DBTaskResult  # noqa: E402

from settings_app.delivery import queue  # noqa: E402
from settings_app.models import (  # noqa: E402
    DeliveryState,
    District,
    Loan,
    MailSource,
    Notice,
    NoticeStatus,
    Patron,
    School,
    SmtpSettings,
)

SLOW_SECONDS = 2.0


class BrokenServers:
    """Silent and slow SMTP servers on 127.0.0.1, served by one event loop in a thread of this process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.connections: dict[int, int] = {}  # port -> connections accepted
        self.servers: list[asyncio.Server] = []
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def start(self, kind: str) -> int:
        handler = self._silent if kind == "silent" else self._slow
        future = asyncio.run_coroutine_threadsafe(self._listen(handler), self.loop)
        return future.result(timeout=5)

    async def _listen(self, handler) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        self.servers.append(server)
        port = server.sockets[0].getsockname()[1]
        self.connections[port] = 0
        return port

    def _count(self, writer: asyncio.StreamWriter) -> None:
        self.connections[writer.get_extra_info("sockname")[1]] += 1

    async def _silent(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._count(writer)
        while await reader.read(4096):
            pass
        writer.close()

    async def _slow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A plain SMTP server (no PIPELINING) that waits SLOW_SECONDS before each reply, the greeting included."""
        self._count(writer)

        async def say(line: bytes) -> None:
            await asyncio.sleep(SLOW_SECONDS)
            writer.write(line)
            await writer.drain()

        try:
            await say(b"220 slow.example.org ESMTP\r\n")
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    await say(b"250-slow.example.org\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    await say(b"354 go ahead\r\n")
                    while (await reader.readline()) not in (b".\r\n", b""):
                        pass
                    await say(b"250 2.0.0 queued\r\n")
                elif verb == b"QUIT":
                    await say(b"221 bye\r\n")
                    break
                else:
                    await say(b"250 2.0.0 ok\r\n")
        except ConnectionError:
            pass
        writer.close()

    def stop(self) -> None:
        for server in self.servers:
            self.loop.call_soon_threadsafe(server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


@dataclass
class Scope:
    kind: str  # healthy, silent or slow
    school: School
    row: SmtpSettings


def make_scopes(kinds: list[tuple[str, int]], n: int) -> list[Scope]:
    tag = secrets.token_hex(3)
    found = installation()
    due = timezone.localdate() - dt.timedelta(days=5)
    scopes = []
    for index, (kind, port) in enumerate(kinds):
        district = District.objects.create(
            installation=found, name=f"Isolation {tag} {index}", slug=f"iso-{tag}-{index}", mail_source=MailSource.OWN
        )
        school = School.objects.create(district=district, name=f"Isolation {tag} {index}", slug=f"iso-{tag}-s{index}")
        row = SmtpSettings.objects.create(
            district=district,
            host="127.0.0.1",
            port=port,
            transport="none",
            from_name="Isolation Library",
            from_email="library@isolation.example.org",
            max_per_hour=10_000,
        )
        patrons = Patron.objects.bulk_create(
            Patron(school=school, name=f"Patron {i}", email=f"p{i}.{index}@isolation.example.org") for i in range(n)
        )
        Loan.objects.bulk_create(Loan(patron=patron, title="Dune", due_on=due) for patron in patrons)
        scopes.append(Scope(kind, school, row))
    return scopes


def start_workers(count: int) -> list[subprocess.Popen]:
    """`count` db_worker processes, polling every 0.1 s, started (and past Django's setup) before anything is queued,
    so queue-to-sent measures delivery, not process start-up."""
    command = [sys.executable, str(ROOT / "manage.py"), "db_worker", "--no-startup-delay", "--no-reload"]
    processes = [subprocess.Popen([*command, "--interval", "0.1", "-v", "0"]) for _ in range(count)]
    time.sleep(3)
    return processes


def stop_workers(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()


def wait_until_done(scopes: list["Scope"], n: int, limit: float) -> float:
    """Until every healthy and slow configuration's notices are sent and every silent one backs off (or `limit`)."""
    started = time.monotonic()
    delivering = [scope.school.pk for scope in scopes if scope.kind != "silent"]
    silent = [scope.row.pk for scope in scopes if scope.kind == "silent"]
    while time.monotonic() - started < limit:
        sent = Notice.objects.filter(school_id__in=delivering, status=NoticeStatus.SENT).count()
        backing = DeliveryState.objects.filter(smtp_settings_id__in=silent, busy_streak__gt=0).count()
        if sent == n * len(delivering) and backing == len(silent):
            break
        time.sleep(0.2)
    else:
        print(f"  stopped after {limit:.0f} s with work left")
    return time.monotonic() - started


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def one_run(label: str, kinds: list[tuple[str, int]], args: argparse.Namespace) -> tuple[float, float, int]:
    user, _ = User.objects.get_or_create(username="benchmark")
    scopes = make_scopes(kinds, args.n)
    workers = start_workers(args.workers)
    try:
        started = time.monotonic()
        for index, scope in enumerate(scopes):
            time.sleep(max(started + index / args.rate - time.monotonic(), 0))
            queue.notices_queue_overdue(school=scope.school, acting_user=user)
        elapsed = wait_until_done(scopes, args.n, args.limit)
        stop_workers(workers)
        return report(label, scopes, args.n, elapsed, args.detail)
    finally:
        stop_workers(workers)
        ids = [scope.row.pk for scope in scopes]
        DBTaskResult.objects.filter(task_path="settings_app.tasks.deliver", args_kwargs__args__0__in=ids).delete()
        District.objects.filter(pk__in=[scope.school.district_id for scope in scopes]).delete()


def report(label: str, scopes: list[Scope], n: int, elapsed: float, detail: bool) -> tuple[float, float, int]:
    healthy = [scope.school.pk for scope in scopes if scope.kind == "healthy"]
    sent = Notice.objects.filter(school_id__in=healthy, status=NoticeStatus.SENT)
    waits = [(at - queued).total_seconds() for at, queued in sent.values_list("sent_at", "queued_at") if at]
    lost = 0
    for kind in ("healthy", "silent", "slow"):
        schools = [scope.school.pk for scope in scopes if scope.kind == kind]
        if not schools:
            continue
        statuses = dict(Notice.objects.filter(school_id__in=schools).values_list("status").annotate(c=Count("id")))
        expected = n * len(schools)
        lost += expected - sum(statuses.values())
        print(f"  {label} {kind:7}: {len(schools):3} configurations, notices {statuses}")
    backing = DeliveryState.objects.filter(
        smtp_settings__in=[scope.row for scope in scopes if scope.kind == "silent"], not_before__gt=timezone.now()
    ).count()
    unsent = n * len(healthy) - len(waits)
    if detail:
        rows = sorted(sent.values_list("queued_at", "sent_at", "school_id"))
        for start in range(0, len(rows), len(rows) // 10 or 1):
            chunk = rows[start : start + len(rows) // 10]
            print("   ", [f"{(b - a).total_seconds():.1f}" for a, b, _ in chunk[:: max(len(chunk) // 8, 1)] if b])
    p50, p95 = percentile(waits, 50), percentile(waits, 95)
    print(
        f"  {label}: healthy notices sent {len(waits)} (unsent {unsent}), queue-to-sent p50 {p50:.2f} s, "
        f"p95 {p95:.2f} s, max {max(waits):.2f} s; all done after {elapsed:.1f} s; silent backing off: {backing}"
    )
    return p50, p95, lost + unsent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configurations", type=int, default=200)
    parser.add_argument("--silent", type=int, default=20)
    parser.add_argument("--slow", type=int, default=10)
    parser.add_argument("-n", type=int, default=4, help="notices per configuration (default 4)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=float, default=300, help="seconds after which a run's workers are stopped")
    parser.add_argument("--rate", type=float, default=15, help="schools queueing notices per second (default 15)")
    parser.add_argument("--repeat", type=int, default=1, help="reference and broken runs, alternating (default 1)")
    parser.add_argument("--detail", action="store_true", help="also print queue-to-sent by queue order (tenths)")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    print(
        f"database {connection.vendor}; {args.workers} workers, DELIVERY_CONCURRENCY={settings.DELIVERY_CONCURRENCY}, "
        f"SMTP_CONNECT_TIMEOUT={settings.SMTP_CONNECT_TIMEOUT:g} s; {args.n} notices per configuration"
    )
    # A run that was itself stopped leaves its scopes behind, pointing at servers that are gone: remove them first.
    District.objects.filter(name__startswith="Isolation ", slug__startswith="iso-").delete()
    healthy_count = args.configurations - args.silent - args.slow
    broken = BrokenServers()
    port = free_port()
    references, brokens = [], []
    try:
        kinds = [("silent", broken.start("silent")) for _ in range(args.silent)]
        kinds += [("slow", broken.start("slow")) for _ in range(args.slow)]
        kinds += [("healthy", port)] * healthy_count
        with smtp_sink(port):
            for _ in range(args.repeat):
                vacuum()
                references.append(one_run("reference", [("healthy", port)] * healthy_count, args))
                vacuum()
                brokens.append(one_run("broken", interleave(kinds), args))
        tries = sorted(count for count in broken.connections.values() if count)
        print(f"  connections per broken server over all runs: min {tries[0]}, max {tries[-1]} (no tight loop)")
    finally:
        broken.stop()
        vacuum()
    p50, p95 = statistics.median(r[0] for r in brokens), statistics.median(r[1] for r in brokens)
    ref50, ref95 = statistics.median(r[0] for r in references), statistics.median(r[1] for r in references)
    lost = sum(r[2] for r in [*brokens, *references])
    print(
        f"healthy_p50_s={p50:.2f} reference_p50_s={ref50:.2f} healthy_p95_s={p95:.2f} reference_p95_s={ref95:.2f} "
        f"ratio={p95 / ref95:.2f} lost={lost}"
    )


def interleave(kinds: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Spread the broken configurations evenly among the healthy ones (ids, hence queue order, mix them)."""
    broken = [kind for kind in kinds if kind[0] != "healthy"]
    healthy = [kind for kind in kinds if kind[0] == "healthy"]
    step = max(len(kinds) // max(len(broken), 1), 1)
    mixed: list[tuple[str, int]] = []
    for index in range(len(kinds)):
        source = broken if index % step == 0 and broken else healthy or broken
        mixed.append(source.pop(0))
    return mixed


if __name__ == "__main__":
    main()
