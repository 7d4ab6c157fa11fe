"""Benchmark: p50 and p95 of the settings page, the district list and the delivery log under the production server
(gunicorn as README's Deployment runs it, DEBUG off) with 20 concurrent logged-in clients and 100,000 notices in the
database.

    .venv/bin/python bench/pages.py [--notices 100000] [--requests 400] [--clients 20] [--workers 2]

The database engine is the one DATABASE_URL names, but always in a database of the benchmark's own: SQLite (the
default) gets a throwaway file in a temporary directory; PostgreSQL gets `destiny_mail_pages` on the server the URL
points at, created at the start and dropped at the end (any query string is kept).
The script migrates it, bulk-inserts an installation with districts, schools, patrons, notices and their delivery
attempts, and a super administrator; starts gunicorn serving `destiny_mail.wsgi:application` on a free loopback
port; logs every client in through the login form (session cookies) and sends each page `--requests` requests from
`--clients` concurrent keep-alive connections, after one unmeasured warm-up request per client. Every response must
be a 200 that contains the page's marker. The login page (no session, no query) and a static file are measured the
same way, as the server's floor. Queries per page are counted in-process first. Everything it starts is stopped.
The last line reads: settings_p95_ms=<n> districts_p95_ms=<n> delivery_log_p95_ms=<n> PASS|MISS (target 100 ms).
"""

import argparse
import asyncio
import datetime as dt
import os
import random
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serving import TICK, WORKERS, free_port, process_cpu, process_tree, production_server  # noqa: E402 (the bench folder is on the path when run)

TARGET_MS = 100.0
PG_DATABASE = "destiny_mail_pages"
PASSWORD = secrets.token_urlsafe(16)
ADMIN = "bench-admin"


# ---------------------------------------------------------------------------------------------------------------
# The database and the environment, decided before Django is set up


@dataclass
class Database:
    url: str  # what Django (here and in the server) uses
    label: str
    admin_conninfo: str = ""  # PostgreSQL: the maintenance database, to create and drop ours


def choose_database(tmp: Path) -> Database:
    given = os.environ.get("DATABASE_URL", "")
    scheme = given.split(":", 1)[0].lower() if given else "sqlite"
    if scheme.startswith("sqlite"):
        path = tmp / "pages.sqlite3"
        return Database(f"sqlite:///{path}", f"SQLite, throwaway file {path}")
    if scheme in {"postgres", "postgresql", "pgsql", "psql"}:
        parts = urlsplit(given)
        ours = urlunsplit(parts._replace(path=f"/{PG_DATABASE}"))
        admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres", query=""))
        return Database(ours, f"PostgreSQL, database {PG_DATABASE} on {parts.hostname}:{parts.port or 5432}", admin)
    sys.exit(f"DATABASE_URL names an engine this benchmark does not handle: {scheme}")


def pg_admin(database: Database, statement: str) -> None:
    import psycopg

    with psycopg.connect(database.admin_conninfo, autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[call-overload]


def prepare_environment(database: Database, tmp: Path) -> None:
    """The production settings the server runs with (DEBUG off); throwaway keys where none are given."""
    from cryptography.fernet import Fernet

    os.environ["DATABASE_URL"] = database.url
    os.environ["DEBUG"] = "false"
    os.environ["HTTPS"] = "false"
    os.environ["STATIC_ROOT"] = str(tmp / "static")
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    os.environ["LOG_LEVEL"] = "WARNING"
    if len(os.environ.get("SECRET_KEY", "")) < 50:
        os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)
    os.environ.setdefault("SMTP_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "destiny_mail.settings")


# ---------------------------------------------------------------------------------------------------------------
# Data: bulk inserts


@dataclass
class Seeded:
    admin_id: int
    settings_slug: str  # a district with its own server, a stored password and a history
    districts: int
    schools: int
    patrons: int
    notices: int
    attempts: int
    status_spread: dict[str, int] = field(default_factory=dict)


def seed(n_notices: int, n_districts: int, schools_per_district: int, patrons_per_school: int) -> Seeded:
    from django.contrib.auth.models import User
    from django.db import transaction
    from django.utils import timezone

    from settings_app import crypto
    from settings_app.delivery.bulk import insert_rows
    from settings_app.models import (
        AttemptOutcome,
        CapReservation,
        DeliveryAttempt,
        District,
        HostingMode,
        Installation,
        MailSource,
        Notice,
        NoticeKind,
        NoticeStatus,
        Patron,
        Role,
        RoleKind,
        School,
        SettingsChange,
        SmtpSettings,
    )

    rng = random.Random(20240601)
    now = timezone.now()
    with transaction.atomic():
        admin = User.objects.create_user(ADMIN, f"{ADMIN}@example.org", PASSWORD)
        Role.objects.create(user=admin, kind=RoleKind.SUPER_ADMIN)
        installation = Installation.objects.create(
            id=1, name="Benchmark Consortium", hosting_mode=HostingMode.SELF_HOSTED, allowed_networks="10.0.0.0/8"
        )

        def smtp(scope: dict[str, Any], host: str, health: str) -> SmtpSettings:
            row = SmtpSettings(
                **scope,
                host=host,
                port=587,
                transport="tls",
                username="library",
                from_name="The Library",
                from_email=f"library@{host.removeprefix('smtp.')}",
                max_per_hour=2000,
                updated_by=admin,
            )
            row.password_sealed = crypto.seal("app-password", row.destination)
            row.password_changed_at, row.password_changed_by = now - dt.timedelta(days=40), admin
            row.last_test_ok = {"working": True, "failing": False, "not_tested": None, "paused": True}[health]
            row.last_test_at = None if health == "not_tested" else now - dt.timedelta(days=3)
            if health == "paused":
                row.paused_at, row.pause_category = now - dt.timedelta(hours=2), "auth"
                row.pause_detail = "535 5.7.8 Authentication credentials invalid"
            row.save()
            changes = [
                SettingsChange(
                    **scope,
                    changed_by=admin,
                    summary={"SMTP (mail) server address": host, "Password": "changed", "Port": "587"},
                )
                for _ in range(12)
            ]
            SettingsChange.objects.bulk_create(changes)
            return row

        consortium = smtp({"installation": installation}, "smtp.consortium.example.org", "working")
        districts, own_rows = [], []
        healths = ["working", "failing", "paused", "not_tested"]
        for d in range(n_districts):
            own = d % 2 == 0
            district = District.objects.create(
                installation=installation,
                name=f"District {d + 1:02d}",
                slug=f"district-{d + 1:02d}",
                mail_source=MailSource.OWN if own else MailSource.CONSORTIUM,
            )
            districts.append(district)
            if own and d != n_districts - 2:  # one district chose its own server but has not set it up
                own_rows.append(smtp({"district": district}, f"smtp.district{d + 1}.example.org", healths[d // 2 % 4]))
        schools = School.objects.bulk_create(
            School(district=district, name=f"{district.name} School {s + 1}", slug=f"{district.slug}-school-{s + 1}")
            for district in districts
            for s in range(schools_per_district)
        )
        patrons = Patron.objects.bulk_create(
            Patron(school=school, name=f"Patron {school.pk}-{p}", email=f"patron{school.pk}-{p}@example.org")
            for school in schools
            for p in range(patrons_per_school)
        )
        by_school: dict[int, list[Patron]] = {}
        for patron in patrons:
            by_school.setdefault(patron.school_id, []).append(patron)
        CapReservation.objects.bulk_create(
            CapReservation(smtp_settings=row, count=rng.randint(5, 60), at=now - dt.timedelta(minutes=m))
            for row in [consortium, *own_rows]
            for m in range(0, 60, 10)
        )
        # Larger schools send more: weights 1..4. A year of notices, ids rising with time; the newest 5% are where
        # the queue is (queued, sending); failures anywhere.
        weights = [1 + (school.pk % 4) for school in schools]
        span = dt.timedelta(days=365)
        row_of_district = {row.district_id: row.pk for row in own_rows}
        settings_of_school = {school.pk: row_of_district.get(school.district_id, consortium.pk) for school in schools}
        started = now - span
        chosen = rng.choices(schools, weights=weights, k=n_notices)
        notices: list[dict[str, Any]] = []
        spread: dict[str, int] = {}
        for i, school in enumerate(chosen):
            created = started + span * (i / n_notices)
            recent = i >= n_notices * 0.95
            roll = rng.random()
            if recent and roll < 0.5:
                status = NoticeStatus.QUEUED
            elif recent and roll < 0.6:
                status = NoticeStatus.SENDING
            elif roll < 0.04:
                status = NoticeStatus.FAILED
            else:
                status = NoticeStatus.SENT
            spread[status.value] = spread.get(status.value, 0) + 1
            overdue = rng.random() < 0.75
            patron = rng.choice(by_school[school.pk])
            attempts = {"sent": 1 + (rng.random() < 0.1), "failed": 3, "queued": int(rng.random() < 0.2)}.get(status, 0)
            last = created + dt.timedelta(minutes=attempts * 2)
            notices.append(
                {
                    "kind": NoticeKind.OVERDUE if overdue else NoticeKind.RESOURCE_LIST,
                    "status": status,
                    "school_id": school.pk,
                    "patron_id": patron.pk,
                    "recipient_name": patron.name,
                    "recipient_email": patron.email,
                    "sender_name": "",
                    "sender_email": "",
                    "note": "" if overdue else "Books for the science fair.",
                    "items": [{"title": f"Title {rng.randint(1, 5000)}", "due": "2024-05-01"}] * rng.randint(1, 3),
                    "message_id": f"<{i}.{secrets.token_hex(8)}@destiny-mail.localdomain>",
                    "created_at": created,
                    "created_by_id": admin.pk,
                    "queued_at": created,
                    "attempts": attempts,
                    "next_attempt_at": last + dt.timedelta(minutes=5) if status == "queued" and attempts else created,
                    "lease_until": now + dt.timedelta(minutes=2) if status == "sending" else None,
                    "lease_token": secrets.token_hex(4) if status == "sending" else "",
                    "sent_at": last if status == "sent" else None,
                    "failed_at": last if status == "failed" else None,
                    "last_category": (
                        ("recipient_rejected" if status == "failed" else "server_busy") if attempts else ""
                    ),
                    "last_reply": "550 5.1.1 no such user" if status == "failed" else "",
                    "smtp_settings_id": settings_of_school[school.pk] if attempts else None,
                    "possible_duplicates": 0,
                }
            )
        for chunk in range(0, len(notices), 10_000):
            insert_rows(Notice, notices[chunk : chunk + 10_000])
        del notices
        attempts_rows: list[dict[str, Any]] = []
        fields = ("id", "status", "attempts", "created_at", "smtp_settings_id")
        for pk, status, count, created, settings_id in Notice.objects.order_by().values_list(*fields).iterator():
            for k in range(count):
                final = k == count - 1
                if status == "sent" and final:
                    outcome, code, reply = AttemptOutcome.SENT, 250, "250 2.0.0 Ok: queued"
                elif status == "failed" and final:
                    outcome, code, reply = AttemptOutcome.FAILED, 550, "550 5.1.1 no such user"
                else:
                    outcome, code, reply = AttemptOutcome.DEFERRED, 421, "421 4.7.0 try again later"
                attempts_rows.append(
                    {
                        "notice_id": pk,
                        "at": created + dt.timedelta(minutes=2 * (k + 1)),
                        "smtp_settings_id": settings_id,
                        "outcome": outcome,
                        "category": "" if outcome == "sent" else ("mailbox" if outcome == "failed" else "busy"),
                        "reply_code": code,
                        "reply": reply,
                    }
                )
        for chunk in range(0, len(attempts_rows), 10_000):
            insert_rows(DeliveryAttempt, attempts_rows[chunk : chunk + 10_000])
    slug = next(district.slug for district in districts if district.pk in row_of_district)
    return Seeded(admin.pk, slug, len(districts), len(schools), len(patrons), n_notices, len(attempts_rows), spread)


def analyze() -> None:
    """PostgreSQL: what autovacuum does within a minute of such a load (statistics, visibility map)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")


# ---------------------------------------------------------------------------------------------------------------
# Queries per page, in-process


@dataclass
class PageSpec:
    name: str
    path: str
    markers: tuple[str, ...]
    cookies: bool = True


def count_queries(pages: list[PageSpec], admin_id: int) -> None:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(User.objects.get(pk=admin_id))
    for page in pages:
        if not page.cookies:
            continue
        client.get(page.path)  # warm caches
        runs = []
        for _ in range(3):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(page.path)
                elapsed = time.perf_counter() - started
            if response.status_code != 200:
                sys.exit(f"{page.path}: in-process GET returned {response.status_code}")
            runs.append((elapsed, [(float(query["time"]), query["sql"]) for query in captured.captured_queries]))
        elapsed, sql = min(runs, key=lambda run: run[0])  # the fastest of three, and its queries
        slowest = max(sql, default=(0.0, ""))
        print(
            f"  {page.name:<13} {len(sql):>3} queries, {sum(t for t, _ in sql) * 1000:6.1f} ms in SQL of "
            f"{elapsed * 1000:6.1f} ms in-process; slowest {slowest[0] * 1000:.1f} ms: {slowest[1][:110]}"
        )


# ---------------------------------------------------------------------------------------------------------------
# The server


def machine_cpu() -> float:
    """CPU seconds all cores spent busy so far (/proc/stat: everything but idle and iowait)."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / TICK


@dataclass
class CpuMeter:
    """Who used the CPU during a measurement: the server, this client, and everything else on the machine."""

    server_pid: int
    started: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def read(self) -> tuple[float, float, float]:
        return process_cpu(process_tree(self.server_pid)), process_cpu([os.getpid()]), machine_cpu()

    def start(self) -> None:
        self.started = self.read()

    def stop(self) -> tuple[float, float, float]:
        now = self.read()
        server, client, machine = (after - before for after, before in zip(now, self.started, strict=True))
        return server, client, max(machine - server - client, 0.0)


# ---------------------------------------------------------------------------------------------------------------
# A small HTTP/1.1 keep-alive client on asyncio (no dependency)


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        return next((value for key, value in self.headers if key == name), "")

    def cookies(self) -> dict[str, str]:
        found = {}
        for key, value in self.headers:
            if key == "set-cookie":
                pair = value.split(";", 1)[0]
                name, _, content = pair.partition("=")
                found[name.strip()] = content.strip()
        return found


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(
        self, method: str, path: str, *, cookies: dict[str, str] | None = None, form: dict[str, str] | None = None
    ) -> Response:
        """One request; on a kept-alive connection the server closed meanwhile (gunicorn: after 2 s idle), it is
        sent again once on a new connection, as browsers do."""
        if self.writer is not None:
            try:
                return await self._request(method, path, cookies, form)
            except (asyncio.IncompleteReadError, ConnectionError):
                await self.close()
        return await self._request(method, path, cookies, form)

    async def _request(
        self, method: str, path: str, cookies: dict[str, str] | None, form: dict[str, str] | None
    ) -> Response:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        body = urlencode(form).encode() if form is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", "Accept: text/html"]
        if cookies:
            lines.append("Cookie: " + "; ".join(f"{key}={value}" for key, value in cookies.items()))
        if form is not None:
            lines += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = []
        for line in header_lines:
            if line:
                key, _, value = line.partition(":")
                headers.append((key.strip().lower(), value.strip()))
        response = Response(int(status_line.split()[1]), headers, b"")
        if response.header("transfer-encoding").lower() == "chunked":
            chunks = []
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            await self.reader.readuntil(b"\r\n")
            response.body = b"".join(chunks)
        else:
            response.body = await self.reader.readexactly(int(response.header("content-length") or 0))
        if response.header("connection").lower() == "close":
            await self.close()
        return response


CSRF_FIELD = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')


async def log_in(port: int) -> tuple[Connection, dict[str, str]]:
    connection = Connection(port)
    form = await connection.request("GET", "/login/")
    cookies = form.cookies()
    token = CSRF_FIELD.search(form.body)
    if form.status != 200 or token is None or "csrftoken" not in cookies:
        sys.exit(f"GET /login/ gave {form.status} without a CSRF token")
    fields = {"username": ADMIN, "password": PASSWORD, "csrfmiddlewaretoken": token.group(1).decode()}
    done = await connection.request("POST", "/login/", cookies=cookies, form=fields)
    cookies |= done.cookies()
    if done.status != 302 or "sessionid" not in cookies:
        sys.exit(f"POST /login/ gave {done.status} without a session: {done.body[:300]!r}")
    return connection, cookies


@dataclass
class Result:
    name: str
    latencies: list[float]
    elapsed: float
    errors: list[str]
    server_cpu: float = 0.0  # CPU seconds of the server's processes during the measured requests
    client_cpu: float = 0.0  # of this process (the clients)
    other_cpu: float = 0.0  # of everything else on the machine

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1] * 1000

    @property
    def p95(self) -> float:
        return self.percentile(95)


async def run_page(
    page: PageSpec, clients: list[tuple[Connection, dict[str, str]]], total: int, limit: float, meter: CpuMeter
) -> Result:
    """`total` GETs of the page from all clients at once, after one unmeasured warm-up request per client."""
    latencies: list[float] = []
    errors: list[str] = []
    remaining = total

    async def get(connection: Connection, cookies: dict[str, str]) -> None:
        async with asyncio.timeout(limit):
            response = await connection.request("GET", page.path, cookies=cookies if page.cookies else None)
        if response.status != 200:
            errors.append(f"{page.path}: HTTP {response.status} {response.header('location')}")
        elif missing := [marker for marker in page.markers if marker.encode() not in response.body]:
            errors.append(f"{page.path}: 200 without {missing}")

    async def client(connection: Connection, cookies: dict[str, str]) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await get(connection, cookies)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(get(connection, cookies) for connection, cookies in clients))
    meter.start()
    started = time.perf_counter()
    await asyncio.gather(*(client(connection, cookies) for connection, cookies in clients))
    elapsed = time.perf_counter() - started
    return Result(page.name, latencies, elapsed, errors, *meter.stop())


async def benchmark(
    port: int, pages: list[PageSpec], n_clients: int, total: int, limit: float, meter: CpuMeter
) -> list[Result]:
    started = time.perf_counter()
    clients = await asyncio.gather(*(log_in(port) for _ in range(n_clients)))
    print(f"login:    {n_clients} clients logged in through the form in {time.perf_counter() - started:.1f} s")
    try:
        results = []
        for page in pages:
            result = await run_page(page, clients, total, limit, meter)
            results.append(result)
            verdict = "" if page.name.startswith("ref:") else (" PASS" if result.p95 < TARGET_MS else " MISS")
            count = len(result.latencies)
            print(
                f"  {page.name:<13} p50 {result.percentile(50):6.1f} ms  p95 {result.p95:6.1f} ms  "
                f"max {max(result.latencies) * 1000:6.1f} ms  {count / result.elapsed:6.1f} req/s  "
                f"server {result.server_cpu / count * 1000:5.1f} ms CPU/req  "
                f"client {result.client_cpu / count * 1000:4.1f} ms CPU/req  "
                f"others {result.other_cpu / result.elapsed:3.1f} cores{verdict}"
            )
            for error in result.errors[:3]:
                print(f"    error: {error}")
        return results
    finally:
        for connection, _ in clients:
            await connection.close()


# ---------------------------------------------------------------------------------------------------------------


def timed(label: str, action: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    value = action()
    print(f"{label:<9} {time.perf_counter() - started:.1f} s")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--notices", type=int, default=100_000, help="notices in the database (default 100000)")
    parser.add_argument("--requests", type=int, default=400, help="measured requests per page (default 400)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    parser.add_argument(
        "--workers", type=int, default=WORKERS, help=f"gunicorn workers (default {WORKERS}: one per core)"
    )
    parser.add_argument("--districts", type=int, default=12, help="districts (default 12)")
    parser.add_argument("--schools", type=int, default=4, help="schools per district (default 4)")
    parser.add_argument("--patrons", type=int, default=200, help="patrons per school (default 200)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one request may take (default 60)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    database = choose_database(tmp)
    created = False
    try:
        prepare_environment(database, tmp)
        if database.admin_conninfo:
            pg_admin(database, f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
            pg_admin(database, f"CREATE DATABASE {PG_DATABASE}")
            created = True
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        print(
            f"database: {database.label}; Python {sys.version.split()[0]}, Django {django.__version__}, "
            f"{os.cpu_count()} cores; gunicorn with {args.workers} worker(s), DEBUG off"
        )
        timed("migrate:", lambda: call_command("migrate", verbosity=0))
        timed("static:", lambda: call_command("collectstatic", interactive=False, verbosity=0))
        started = time.perf_counter()
        seeded = seed(args.notices, args.districts, args.schools, args.patrons)
        analyze()
        print(
            f"setup:    {time.perf_counter() - started:.1f} s for {seeded.districts} districts,"
            f" {seeded.schools} schools, {seeded.patrons:,} patrons, {seeded.notices:,} notices {seeded.status_spread},"
            f" {seeded.attempts:,} attempts"
        )
        pages = [
            PageSpec("ref:login", "/login/", ("csrfmiddlewaretoken",), cookies=False),
            PageSpec("ref:static", "/static/css/app.css", ("{",), cookies=False),
            PageSpec("settings", f"/setup/districts/{seeded.settings_slug}/options/", ("Update District:", "History")),
            PageSpec("districts", "/setup/installation/options/", ('id="districts-title"', "District 01")),
            PageSpec("delivery_log", "/delivery/", ('id="notice-log"', "Page 1 of")),
        ]
        print("queries (in-process, one request, warm):")
        count_queries(pages, seeded.admin_id)
        connection.close()

        port = free_port()
        print(f"server:   gunicorn on 127.0.0.1:{port}; {args.clients} clients, {args.requests} requests per page")
        with production_server(port, workers=args.workers) as server:
            meter = CpuMeter(server.pid)
            results = asyncio.run(benchmark(port, pages, args.clients, args.requests, args.timeout, meter))
    finally:
        if created:
            from django.db import connections

            connections.close_all()
            pg_admin(database, f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        shutil.rmtree(tmp, ignore_errors=True)

    measured = {result.name: result for result in results}
    errors = sum(len(result.errors) for result in results)
    if errors:
        sys.exit(f"{errors} response(s) were not a 200 with the page's marker: not a valid run.")
    names = ("settings", "districts", "delivery_log")
    verdict = "PASS" if all(measured[name].p95 < TARGET_MS for name in names) else "MISS"
    print(" ".join(f"{name}_p95_ms={measured[name].p95:.0f}" for name in names) + f" {verdict}")


if __name__ == "__main__":
    main()
