"""Benchmark: the HTTP round trip of Test Server against a healthy loopback SMTP server, beside a bare aiosmtplib
session to the same server, and the time to verdict for a silent server against its configured bound.

    .venv/bin/python bench/test_server.py [--requests 200] [--mode plain|starttls] [--auth]
        [--silent-runs 3] [--connect-timeout 2] [--total-timeout 3]

It starts the production server (gunicorn as README's Deployment runs it, DEBUG off) on a free port of
127.0.0.1, an aiosmtpd server (plain, or STARTTLS with a CA made at run time) and a silent TCP server (the kernel
accepts connections, nothing ever greets). It logs in as a super administrator it creates and POSTs Test Server
for a district it creates, with the `X-Requested-With: fetch` header, sequentially over one keep-alive connection;
then it runs the same number of bare aiosmtplib sessions (connect + EHLO + QUIT; with STARTTLS and AUTH when the
Test Server does them). Every Test Server answer must say the server works, or the run fails.

Database: DATABASE_URL when set (migrated, and what the benchmark creates there is deleted at the end; the
installation must be self-hosted with 127.0.0.0/8 allowed, and a fresh database gets such an installation);
otherwise a throwaway SQLite file in a temporary directory. Never var/db.sqlite3.

Targets: Test Server p50 < 50 ms; the silent server answered within SMTP_TOTAL_TIMEOUT + 0.5 s. A missed target
prints MISS; only a failed run exits non-zero. The last line reads:
test_server_p50_ms=<n> test_server_p95_ms=<n> bare_p50_ms=<n> silent_verdict_s=<n> silent_bound_s=<n>
"""

import argparse
import asyncio
import base64
import http.client
import logging
import os
import secrets
import shutil
import socket
import ssl
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serving import free_port, process_cpu, process_tree, production_server  # noqa: E402 (the bench folder is on the path when run)

TARGET_P50_MS = 50.0
SILENT_SLACK_S = 0.5
WARMUP = 5


def configure_environment(connect_timeout: float, total_timeout: float) -> Path | None:
    """Environment shared by this process and the web server; returns the temporary directory it made, if any.

    Production-like settings (DEBUG off, a fresh 50+ character SECRET_KEY unless one is set), the rate limit out
    of the way, the timeouts of the silent-server run. Set before Django reads its settings (`.env` never
    overrides the environment).
    """
    scratch = None
    if not os.environ.get("DATABASE_URL"):
        scratch = Path(tempfile.mkdtemp(prefix="bench-test-server-"))
        os.environ["DATABASE_URL"] = f"sqlite:///{scratch / 'db.sqlite3'}"
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "destiny_mail.settings",
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SMTP_TESTS_PER_MINUTE": "1000000",
            "SMTP_CONNECT_TIMEOUT": str(connect_timeout),
            "SMTP_TOTAL_TIMEOUT": str(total_timeout),
            "LOG_LEVEL": "WARNING",
        }
    )
    if len(os.environ.get("SECRET_KEY", "")) < 50:
        os.environ["SECRET_KEY"] = secrets.token_urlsafe(64)
    if not os.environ.get("SMTP_ENCRYPTION_KEYS"):
        os.environ["SMTP_ENCRYPTION_KEYS"] = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return scratch


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="Test Server requests and bare sessions (200)")
    parser.add_argument(
        "--mode", choices=["plain", "starttls"], default="plain", help="the healthy server's transport (plain)"
    )
    parser.add_argument("--auth", action="store_true", help="the healthy server requires AUTH (PLAIN/LOGIN)")
    parser.add_argument("--silent-runs", type=int, default=3, help="Test Server presses against the silent server")
    parser.add_argument("--connect-timeout", type=float, default=2.0, help="SMTP_CONNECT_TIMEOUT, seconds (2)")
    parser.add_argument("--total-timeout", type=float, default=3.0, help="SMTP_TOTAL_TIMEOUT, seconds (3)")
    args = parser.parse_args()
    if not 1 <= args.requests <= 100_000 or not 1 <= args.silent_runs <= 100:
        parser.error("--requests must be 1-100000 and --silent-runs 1-100")
    return args


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


@dataclass
class Fixture:
    """What the benchmark created in the database, and how to undo it."""

    user_id: int
    district_slug: str
    username: str
    password: str = field(repr=False)
    ca_bundle_before: str | None = None


@dataclass
class Healthy:
    """The healthy SMTP server and what a client needs to reach it."""

    port: int
    mode: str
    ca_pem: str
    credentials: tuple[str, str] | None


@contextmanager
def healthy_server(mode: str, auth: bool) -> Iterator[Healthy]:
    from settings_app.mail.localserver import RecordingHandler, ServerMode, make_ca, smtp_server

    credentials = ("bench", secrets.token_urlsafe(12)) if auth else None
    authority = make_ca("Destiny Mail Benchmark CA")
    handler = RecordingHandler(credentials=credentials, record=False)
    server_mode = ServerMode.STARTTLS if mode == "starttls" else ServerMode.PLAIN
    key_pair = authority.issue() if mode == "starttls" else None
    controller = smtp_server(handler, mode=server_mode, key_pair=key_pair, auth=auth)
    try:
        yield Healthy(controller.port, mode, authority.pem, credentials)
    finally:
        controller.stop()


@contextmanager
def silent_server() -> Iterator[int]:
    """A listening socket nobody accepts from: the kernel completes the handshake, no greeting ever comes."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]
    finally:
        sock.close()


def prepare_database(healthy: Healthy) -> Fixture:
    """Migrate, then create a super administrator and a district of our own (and trust the CA if STARTTLS)."""
    import ipaddress

    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import transaction

    from settings_app.mail import reach
    from settings_app.models import District, HostingMode, Installation, MailSource, Role, RoleKind

    call_command("migrate", verbosity=0, interactive=False)
    installation = Installation.objects.filter(id=1).first()
    if installation is None:
        installation = Installation.objects.create(
            id=1, name="Benchmark", hosting_mode=HostingMode.SELF_HOSTED, allowed_networks="127.0.0.0/8"
        )
    elif reason := reach.judge(ipaddress.ip_address("127.0.0.1"), installation.reach_policy):
        sys.exit(f"The installation may not reach 127.0.0.1 ({reason}): not benchmarking.")
    tag = secrets.token_hex(4)
    password = secrets.token_urlsafe(16)
    with transaction.atomic():
        user = User.objects.create_user(f"bench-{tag}", f"bench-{tag}@bench.example.org", password)
        Role.objects.create(user=user, kind=RoleKind.SUPER_ADMIN)
        district = District.objects.create(
            installation=installation, name=f"Benchmark {tag}", slug=f"bench-{tag}", mail_source=MailSource.OWN
        )
        ca_bundle_before = None
        if healthy.mode == "starttls":  # the connector verifies against the system store plus this bundle
            ca_bundle_before = installation.ca_bundle
            installation.ca_bundle = f"{ca_bundle_before.rstrip()}\n{healthy.ca_pem}".lstrip()
            installation.save(update_fields=["ca_bundle"])
    return Fixture(user.pk, district.slug, user.username, password, ca_bundle_before)


def clean_database(fixture: Fixture) -> None:
    from django.contrib.auth.models import User
    from django.db import connections

    from settings_app.models import District, Installation

    District.objects.filter(slug=fixture.district_slug).delete()  # its test records go with it
    User.objects.filter(pk=fixture.user_id).delete()
    if fixture.ca_bundle_before is not None:
        Installation.objects.filter(id=1).update(ca_bundle=fixture.ca_bundle_before)
    connections.close_all()


class Browser:
    """One keep-alive HTTP connection with a cookie jar and the CSRF header, like the page's fetch()."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def close(self) -> None:
        self.connection.close()

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        sent = {"Host": "127.0.0.1", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
            sent["X-CSRFToken"] = self.cookies.get("csrftoken", "")
        self.connection.request(method, path, body=body, headers=sent)
        response = self.connection.getresponse()
        text = response.read().decode(errors="replace")
        for header in response.headers.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            self.cookies.update({name: morsel.value for name, morsel in jar.items()})
        return response.status, text

    def log_in(self, username: str, password: str) -> None:
        status, _ = self.request("GET", "/login/")
        if status != 200 or "csrftoken" not in self.cookies:
            sys.exit(f"GET /login/ answered {status} without a CSRF cookie.")
        form = {"username": username, "password": password, "csrfmiddlewaretoken": self.cookies["csrftoken"]}
        status, text = self.request("POST", "/login/", form)
        if status != 302 or "sessionid" not in self.cookies:
            sys.exit(f"Logging in failed ({status}):\n{text[:2000]}")


def test_server_form(port: int, transport: str, credentials: tuple[str, str] | None) -> dict[str, str]:
    username, password = credentials or ("", "")
    return {
        "smtp-host": "127.0.0.1",
        "smtp-port": str(port),
        "smtp-transport": transport,
        "smtp-username": username,
        "smtp-password": password,
        "smtp-from_name": "Benchmark Library",
        "smtp-from_email": "library@bench.example.org",
        "smtp-max_per_hour": "1000",
    }


def press_test_server(browser: Browser, path: str, form: dict[str, str]) -> tuple[float, int, str]:
    started = time.perf_counter()
    status, text = browser.request("POST", path, form, {"X-Requested-With": "fetch"})
    return time.perf_counter() - started, status, text


def bench_test_server(browser: Browser, path: str, form: dict[str, str], n: int) -> list[float]:
    """Round trips in ms; every answer must be a 200 whose verdict says the server works."""
    timings = []
    for i in range(WARMUP + n):
        elapsed, status, text = press_test_server(browser, path, form)
        if status != 200 or "verdict-ok" not in text:
            sys.exit(f"Test Server #{i + 1} did not say the server works ({status}):\n{text[:3000]}")
        if i >= WARMUP:
            timings.append(elapsed * 1000)
    return timings


async def bare_sessions(healthy: Healthy, n: int) -> list[float]:
    """aiosmtplib alone: connect + EHLO (+ STARTTLS + EHLO, + AUTH) + QUIT, sequentially; ms each."""
    import aiosmtplib

    context = ssl.create_default_context(cadata=healthy.ca_pem)
    timings = []
    for i in range(WARMUP + n):
        started = time.perf_counter()
        client = aiosmtplib.SMTP(
            hostname="127.0.0.1",
            port=healthy.port,
            local_hostname="bench.localdomain",
            start_tls=healthy.mode == "starttls",
            tls_context=context,
            timeout=10,
        )
        await client.connect()
        await client.ehlo()
        if healthy.credentials:
            await client.login(*healthy.credentials)
        await client.quit()
        if i >= WARMUP:
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def time_silent(browser: Browser, path: str, port: int, runs: int) -> list[float]:
    """Seconds to a verdict for the silent server; each must be the timeout verdict."""
    from settings_app.mail.diagnosis import ADVICE, Category

    timeout_title = str(ADVICE[Category.TIMEOUT].title)
    timings = []
    for i in range(runs):
        elapsed, status, text = press_test_server(browser, path, test_server_form(port, "none", None))
        if status != 200 or "verdict-fail" not in text or timeout_title not in text:
            sys.exit(f"Silent server #{i + 1}: no timeout verdict ({status}):\n{text[:3000]}")
        timings.append(elapsed)
    return timings


def describe(label: str, samples: list[float]) -> str:
    return (
        f"{label}: n={len(samples)} p50={percentile(samples, 50):.1f} ms p95={percentile(samples, 95):.1f} ms "
        f"max={max(samples):.1f} ms"
    )


def main() -> None:
    args = parse_args()
    scratch = configure_environment(args.connect_timeout, args.total_timeout)
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.urls import reverse

        # aiosmtpd's own AUTH code logs "Session.login_data is deprecated" on every login, at WARNING.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        database = "throwaway SQLite file" if scratch else f"{engine} from DATABASE_URL"
        auth = " + AUTH" if args.auth else ""
        print(f"database: {database}; healthy server: {args.mode}{auth}; {WARMUP} warm-up requests not counted")
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
        with healthy_server(args.mode, args.auth) as healthy, silent_server() as silent_port:
            fixture = prepare_database(healthy)
            browser = None
            try:
                port = free_port()
                log = Path(tempfile.gettempdir()) / f"bench-test-server-gunicorn-{port}.log"
                with production_server(port, log=log) as server:
                    server_pids = process_tree(server.pid)
                    browser = Browser(port)
                    browser.log_in(fixture.username, fixture.password)
                    path = reverse("district_test_server", kwargs={"slug": fixture.district_slug})
                    transport = "tls" if args.mode == "starttls" else "none"
                    form = test_server_form(healthy.port, transport, healthy.credentials)
                    cpu_before = process_cpu(server_pids)
                    served = bench_test_server(browser, path, form, args.requests)
                    server_cpu_ms = (process_cpu(server_pids) - cpu_before) / (WARMUP + args.requests) * 1000
                    bare = asyncio.run(bare_sessions(healthy, args.requests))
                    silent = time_silent(browser, path, silent_port, args.silent_runs)
            finally:
                if browser is not None:
                    browser.close()
                clean_database(fixture)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    steps = (
        "connect + EHLO" + (" + STARTTLS + EHLO" if args.mode == "starttls" else "") + (" + AUTH" if args.auth else "")
    )
    print(describe("test server (HTTP round trip)", served))
    print(describe(f"bare aiosmtplib ({steps} + QUIT)", bare))
    p50, p95, bare_p50 = percentile(served, 50), percentile(served, 95), percentile(bare, 50)
    print(f"server CPU: {server_cpu_ms:.1f} ms per Test Server request (gunicorn, all processes)")
    print(f"overhead: p50 {p50 / bare_p50:.1f}x the bare session (+{p50 - bare_p50:.1f} ms)")
    bound = args.total_timeout
    print(
        f"silent server: verdict in {', '.join(f'{s:.2f}' for s in silent)} s; bound {bound:g} s "
        f"(SMTP_TOTAL_TIMEOUT; connect timeout {args.connect_timeout:g} s)"
    )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'PASS' if p50 < TARGET_P50_MS else 'MISS'}: test server p50 {p50:.1f} ms (target < {TARGET_P50_MS:g} ms)")
    worst = max(silent)
    limit = bound + SILENT_SLACK_S
    print(f"{'PASS' if worst <= limit else 'MISS'}: silent server answered in {worst:.2f} s (target <= {limit:g} s)")
    print(
        f"test_server_p50_ms={p50:.1f} test_server_p95_ms={p95:.1f} bare_p50_ms={bare_p50:.1f} "
        f"silent_verdict_s={worst:.2f} silent_bound_s={bound:g}"
    )


if __name__ == "__main__":
    main()
