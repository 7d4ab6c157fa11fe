"""Benchmark: N overdue notices queued and drained by the real worker into Postfix's smtp-sink, against the same
N messages sent through Django's own SMTP backend over one connection. Half the patrons read Spanish (--spanish),
so each batch writes notices in two languages.

    .venv/bin/python bench/notices.py [-n 10000] [--workers 1] [--spanish 0.5] [--oauth]

It uses the configured database (DATABASE_URL): it creates its own district, school and SMTP settings pointing
at an smtp-sink it starts on 127.0.0.1, and deletes them at the end (on PostgreSQL, then VACUUMs the database, so
repeated runs measure the same thing). The installation must be self-hosted with
127.0.0.0/8 allowed (bin/run's demo is); a fresh database gets such an installation. Never starts the postfix
daemon. The last line reads: notices_per_s=<n> django_per_s=<n> ratio=<r> spanish=<share>

With --oauth the notices sign in with OAuth 2.0: bench/xoauth2_front.py (a process of its own) runs the demo
identity provider and a front that checks AUTH XOAUTH2 before passing each session to smtp-sink; the installation
must trust the demo CA (var/demo-ca/, as bin/run's demo does) and gets that provider as its identity provider for
the run. Django's side still sends without login.
"""

import argparse
import base64
import hashlib
import os
import resource
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serving import free_port  # noqa: E402 (the bench folder is on the path when run)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "destiny_mail.settings")

import django  # noqa: E402

django.setup()

import datetime as dt  # noqa: E402
import ipaddress  # noqa: E402

import httpx2  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core import mail  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from settings_app import crypto, services  # noqa: E402
from settings_app.delivery import queue, render  # noqa: E402
from settings_app.mail import reach  # noqa: E402
from settings_app.mail.localserver import demo_ca_pem  # noqa: E402
from settings_app.mail.localserver.oauth import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET  # noqa: E402
from settings_app.models import (  # noqa: E402
    District,
    HostingMode,
    Installation,
    Loan,
    MailSource,
    Notice,
    NoticeStatus,
    Patron,
    School,
    SmtpSettings,
)
from settings_app.oauth.providers import Provider  # noqa: E402

SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"


@contextmanager
def smtp_sink(port: int):
    command = [SINK, *(["-u", "nobody"] if os.geteuid() == 0 else []), f"127.0.0.1:{port}", "256"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None:
                    sys.exit(f"smtp-sink did not start: {process.stderr.read().decode() if process.stderr else ''}")
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(timeout=5)


def installation() -> Installation:
    found = Installation.objects.filter(id=1).first()
    if found is None:
        return Installation.objects.create(
            id=1, name="Benchmark", hosting_mode=HostingMode.SELF_HOSTED, allowed_networks="127.0.0.0/8"
        )
    if reach.judge(ipaddress.ip_address("127.0.0.1"), found.reach_policy):
        sys.exit(
            "The installation may not reach 127.0.0.1 (hosted mode, or 127.0.0.0/8 not allowed): not benchmarking."
        )
    return found


def scope(port: int, n: int, spanish: float) -> tuple[School, SmtpSettings]:
    tag = secrets.token_hex(4)
    district = District.objects.create(
        installation=installation(), name=f"Benchmark {tag}", slug=f"bench-{tag}", mail_source=MailSource.OWN
    )
    school = School.objects.create(district=district, name=f"Benchmark School {tag}", slug=f"bench-school-{tag}")
    row = SmtpSettings.objects.create(
        district=district,
        host="127.0.0.1",
        port=port,
        transport="none",
        from_name="Benchmark Library",
        from_email="library@bench.example.org",
        max_per_hour=max(100_000, 2 * n),
    )
    every = round(1 / spanish) if spanish else 0  # every how many patrons one reads Spanish
    patrons = Patron.objects.bulk_create(
        Patron(
            school=school,
            name=f"Patron {i}",
            email=f"patron{i}@bench.example.org",
            language="es" if every and i % every == 0 else "en",
        )
        for i in range(n)
    )
    due = timezone.localdate() - dt.timedelta(days=5)
    Loan.objects.bulk_create(
        Loan(patron=patron, title=f"Title {i}-{k}", due_on=due) for i, patron in enumerate(patrons) for k in range(2)
    )
    return school, row


def vacuum() -> None:
    """Give PostgreSQL back the space of the rows this run wrote and deleted, whether or not autovacuum is on."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")


def cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def drain(workers: int) -> None:
    if workers == 1:
        call_command("db_worker", batch=True, startup_delay=False, reload=False, verbosity=0)
        return
    command = [sys.executable, str(ROOT / "manage.py"), "db_worker", "--batch", "--no-startup-delay", "--no-reload"]
    processes = [subprocess.Popen([*command, "-v", "0"]) for _ in range(workers)]
    for process in processes:
        process.wait()


def bench_notices(school: School, row: SmtpSettings, n: int, workers: int) -> tuple[float, float]:
    user, _ = User.objects.get_or_create(username="benchmark")
    started, cpu_started = time.perf_counter(), cpu()
    queued = queue.notices_queue_overdue(school=school, acting_user=user)
    drain(workers)
    elapsed, cpu_used = time.perf_counter() - started, cpu() - cpu_started
    sent = Notice.objects.filter(school=school, status=NoticeStatus.SENT).count()
    if queued.queued != n or sent != n:
        sys.exit(f"Only {sent} of {queued.queued} notices were sent.")
    return n / elapsed, cpu_used / n * 1e6


def django_messages(school: School, row: SmtpSettings) -> list[mail.EmailMultiAlternatives]:
    messages = []
    notices = Notice.objects.filter(school=school).values_list(
        "recipient_name", "recipient_email", "items", "message_id", "language"
    )
    sender = f"{row.from_name} <{row.from_email}>"
    for name, email, items, message_id, language in notices:
        letterhead = render.Letterhead(
            "overdue", school.name, school.district.name, row.from_name, row.from_email, False, language
        )
        letter = render.Letter(name, email, "", items, message_id, timezone.now())
        subject, text, html = render.render_full(letterhead, letter)
        message = mail.EmailMultiAlternatives(
            subject, text, sender, [f"{name} <{email}>"], reply_to=[sender], headers={"Message-ID": message_id}
        )
        message.attach_alternative(html, "text/html")
        messages.append(message)
    return messages


def bench_django(messages: list[mail.EmailMultiAlternatives], port: int) -> tuple[float, float]:
    options = {"host": "127.0.0.1", "port": port}
    mailers = {"bench": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": options}}
    with override_settings(MAILERS=mailers):
        backend = mail.mailers["bench"]
        started, cpu_started = time.perf_counter(), cpu()
        with backend:
            sent = backend.send_messages(messages)
        elapsed, cpu_used = time.perf_counter() - started, cpu() - cpu_started
    if sent != len(messages):
        sys.exit(f"Django's backend sent {sent} of {len(messages)}.")
    return len(messages) / elapsed, cpu_used / len(messages) * 1e6


@contextmanager
def xoauth2_front(sink_port: int):
    """The identity provider and XOAUTH2 front of bench/xoauth2_front.py: yields (front port, provider URL)."""
    front_port, oauth_port = free_port(), free_port()
    command = [sys.executable, str(ROOT / "bench" / "xoauth2_front.py"), str(sink_port), str(front_port)]
    process = subprocess.Popen([*command, str(oauth_port), REDIRECT_URL], stdout=subprocess.PIPE, text=True)
    try:
        if process.stdout is None or process.stdout.readline().strip() != "ready":
            sys.exit("bench/xoauth2_front.py did not start.")
        yield front_port, f"https://localhost:{oauth_port}"
    finally:
        process.terminate()
        process.wait(timeout=5)


REDIRECT_URL = "http://127.0.0.1:1/oauth/callback/"  # never visited: the benchmark consents on the account's behalf


def sign_in_with_oauth(row: SmtpSettings, front_port: int, issuer: str) -> None:
    """Point the row at the front, register the demo app on it, and connect its account (authorization code)."""
    ca_pem = demo_ca_pem(ROOT / "var" / "demo-ca")
    install = row.district.installation  # type: ignore[union-attr]
    if ca_pem.strip() not in install.ca_bundle:
        sys.exit("The installation does not trust the demo CA (var/demo-ca/): run bin/run's seed_demo first.")
    install.oauth_issuer = issuer
    install.save(update_fields=["oauth_issuer"])
    row.port, row.username, row.auth_method = front_port, "bench@bench.example.org", "oauth"
    row.oauth_provider, row.oauth_client_id = Provider.INSTALLATION, DEMO_CLIENT_ID
    row.oauth_client_secret_sealed = crypto.seal(DEMO_CLIENT_SECRET, row.oauth_binding)
    row.save()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    common = {"client_id": DEMO_CLIENT_ID, "redirect_uri": REDIRECT_URL}
    with httpx2.Client(verify=ssl.create_default_context(cadata=ca_pem), timeout=10, trust_env=False) as client:
        answer = client.post(
            f"{issuer}/authorize",
            data={
                **common,
                "response_type": "code",
                "scope": "smtp",
                "state": "bench",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "account": row.username,
                "decision": "allow",
            },
        )
        code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
        token = client.post(
            f"{issuer}/token",
            data={
                **common,
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "client_secret": DEMO_CLIENT_SECRET,
            },
        ).json()
    user, _ = User.objects.get_or_create(username="benchmark")
    services.smtp_oauth_connect(
        row_id=row.pk,
        binding=row.oauth_binding,
        refresh_token=token["refresh_token"],
        account=row.username,
        acting_user=user,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="notices to send (default 10000)")
    parser.add_argument("--workers", type=int, default=1, help="db_worker processes draining the queue (default 1)")
    parser.add_argument("--spanish", type=float, default=0.5, help="share of patrons who read Spanish (default 0.5)")
    parser.add_argument("--oauth", action="store_true", help="the notices sign in with OAuth 2.0 (AUTH XOAUTH2)")
    args = parser.parse_args()
    port = free_port()
    with smtp_sink(port), xoauth2_front(port) if args.oauth else nullcontext((0, "")) as (front_port, issuer):
        school, row = scope(port, args.n, args.spanish)
        issuer_before = row.district.installation.oauth_issuer  # type: ignore[union-attr]
        try:
            if args.oauth:
                sign_in_with_oauth(row, front_port, issuer)
            rate, cpu_each = bench_notices(school, row, args.n, args.workers)
            spanish = Notice.objects.filter(school=school, language="es").count() / args.n
            print(
                f"notices: {args.n} queued and sent in {args.n / rate:.2f} s: {rate:,.0f}/s, {cpu_each:.0f} µs CPU each"
                f" ({spanish:.0%} in Spanish)"
            )
            messages = django_messages(school, row)
            django_rate, django_cpu = bench_django(messages, port)
            print(
                f"django:  {args.n} sent in {args.n / django_rate:.2f} s: {django_rate:,.0f}/s, {django_cpu:.0f} µs CPU"
            )
        finally:
            Installation.objects.filter(pk=1).update(oauth_issuer=issuer_before)
            school.district.delete()
            vacuum()
    print(
        f"notices_per_s={rate:.0f} django_per_s={django_rate:.0f} ratio={rate / django_rate:.2f} spanish={spanish:.2f}"
    )


if __name__ == "__main__":
    main()
