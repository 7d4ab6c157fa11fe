"""Benchmark: the queue at scale on PostgreSQL. 1,000,000 notices (most sent, 50,000 due) over 500 SMTP
configurations: the database time of claiming a batch, the sweep, and the delivery log's first page and its filters,
beside the same queries on an empty notice table; then a worker's memory over a run that sends the due notices and
more queued as it goes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/dm_scale_bench .venv/bin/python bench/scale.py \\
        [-n 1000000] [--due 50000] [--configurations 500] [--memory-seconds 120] [--explain] [--keep] [--reuse]

Database time is what PostgreSQL reports for the statements the real code runs (captured, then replayed under
EXPLAIN ANALYZE inside a transaction that is rolled back): planning plus execution, summed per operation. It creates
its own districts, schools, settings and notices (self-hosted installation, 127.0.0.0/8 allowed) and deletes them at
the end, then VACUUMs. Use a database of its own: it needs a few minutes and about 1 GB.
The last line reads: worst_ms=<ms> (target < 50) rss_start_mb=<mb> rss_end_mb=<mb>
"""

import argparse
import datetime as dt
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from notices import installation, smtp_sink, vacuum  # noqa: E402 (the bench folder is on the path when run)
from serving import free_port  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "destiny_mail.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import F  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from settings_app import tasks  # noqa: E402
from settings_app.delivery import due, worker  # noqa: E402
from settings_app.models import (  # noqa: E402
    District,
    Installation,
    MailSource,
    Notice,
    NoticeStatus,
    Role,
    RoleKind,
    School,
    SmtpSettings,
)

SKIPPED = re.compile(r"^\s*(SAVEPOINT|RELEASE|ROLLBACK|BEGIN|COMMIT|SET )", re.IGNORECASE)


class Rollback(Exception):
    pass


def captured(action: Callable[[], object]) -> list[str]:
    """The SQL `action` runs, with its writes rolled back."""
    connection.queries_log.clear()  # the log keeps 9,000 queries: a fuller one would shift what is captured
    with CaptureQueriesContext(connection) as context:
        try:
            with transaction.atomic():
                action()
                raise Rollback
        except Rollback:
            pass
    return [query["sql"] for query in context.captured_queries if not SKIPPED.match(query["sql"])]


SLOWEST: dict[str, tuple[float, str]] = {}


def database_ms(statements: list[str]) -> tuple[float, float]:
    """Planning + execution time PostgreSQL reports for the statements, replayed in order and rolled back:
    the total and the slowest one (ms)."""
    times = []
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
                plan = cursor.fetchone()[0]
                plan = plan[0] if isinstance(plan, list) else json.loads(plan)[0]
                times.append(plan["Planning Time"] + plan["Execution Time"])
                if times[-1] > SLOWEST.get(sql[:60], (0.0, ""))[0]:
                    SLOWEST[sql[:60]] = (times[-1], sql)
            raise Rollback
    except Rollback:
        pass
    return sum(times), max(times, default=0.0)


def make_scopes(count: int) -> tuple[str, list[SmtpSettings], list[School], int]:
    tag = secrets.token_hex(3)
    found = installation()
    districts = District.objects.bulk_create(
        District(installation=found, name=f"Scale {tag} {i}", slug=f"scale-{tag}-{i}", mail_source=MailSource.OWN)
        for i in range(count)
    )
    schools = School.objects.bulk_create(
        School(district=district, name=f"Scale School {tag} {i}", slug=f"scale-{tag}-s{i}")
        for i, district in enumerate(districts)
    )
    rows = SmtpSettings.objects.bulk_create(
        SmtpSettings(
            district=district,
            host="127.0.0.1",
            port=25,
            transport="none",
            from_name="Scale Library",
            from_email="library@scale.example.org",
            max_per_hour=1_000_000,
        )
        for district in districts
    )
    return tag, rows, schools, districts[0].pk


def fill(tag: str, schools: list[School], n: int, due_count: int) -> float:
    """n notices in one INSERT ... SELECT: `due_count` queued and due, 1% failed, the rest sent, over 90 days;
    one delivery attempt per notice that was tried."""
    started = time.perf_counter()
    school_ids = [school.pk for school in schools]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO settings_app_notice (kind, status, school_id, recipient_name, recipient_email, sender_name,
                sender_email, note, items, message_id, created_at, queued_at, attempts, next_attempt_at, lease_token,
                sent_at, failed_at, last_category, gave_up, last_reply, possible_duplicates, language)
            SELECT CASE WHEN g %% 5 = 0 THEN 'resource_list' ELSE 'overdue' END,
                   CASE WHEN g <= %(due)s THEN 'queued' WHEN g %% 100 = 0 THEN 'failed' ELSE 'sent' END,
                   (%(schools)s::bigint[])[1 + g %% %(count)s],
                   'Patron ' || g, 'patron' || g || '@scale.example.org', '', '', '',
                   '[{"title": "Dune", "due": "2025-01-01"}]'::jsonb,
                   '<' || %(tag)s || '.' || g || '@scale.example.org>',
                   at, at, CASE WHEN g <= %(due)s THEN 0 ELSE 1 END,
                   CASE WHEN g <= %(due)s THEN now() - interval '1 minute' ELSE at END, '',
                   CASE WHEN g > %(due)s AND g %% 100 <> 0 THEN at END,
                   CASE WHEN g > %(due)s AND g %% 100 = 0 THEN at END,
                   CASE WHEN g > %(due)s AND g %% 100 = 0 THEN 'recipient_rejected' ELSE '' END,
                   false,
                   CASE WHEN g > %(due)s AND g %% 100 = 0 THEN '550 5.1.1 no such user' ELSE '' END, 0,
                   CASE WHEN g %% 2 = 0 THEN 'es' ELSE 'en' END
            FROM generate_series(1, %(n)s) AS g,
                 LATERAL (SELECT now() - (g::float / %(n)s) * interval '90 days' AS at) AS moment
            """,
            {"due": due_count, "schools": school_ids, "count": len(school_ids), "tag": tag, "n": n},
        )
        cursor.execute(
            """
            INSERT INTO settings_app_deliveryattempt (notice_id, at, outcome, category, reply_code, reply)
            SELECT id, created_at, CASE status WHEN 'sent' THEN 'sent' ELSE 'failed' END, last_category,
                   CASE status WHEN 'sent' THEN 250 ELSE 550 END,
                   CASE status WHEN 'sent' THEN '250 2.0.0 queued' ELSE last_reply END
            FROM settings_app_notice WHERE message_id LIKE %(pattern)s AND status <> 'queued'
            """,
            {"pattern": f"<{tag}.%"},
        )
    vacuum()
    return time.perf_counter() - started


def fresh_version() -> None:
    """A write, so the pages read the database anew instead of what they kept (selectors.data_version)."""
    Installation.objects.filter(pk=1).update(name=F("name"))


def operations(rows: list[SmtpSettings], district: District, super_admin: User, admin: User) -> dict[str, Callable]:
    client_super, client_admin = Client(HTTP_HOST="127.0.0.1"), Client(HTTP_HOST="127.0.0.1")
    client_super.force_login(super_admin)
    client_admin.force_login(admin)
    school = district.schools.get()
    today = timezone.localdate()

    def page(client: Client, url: str, **query: str) -> Callable[[], object]:
        def get() -> object:
            fresh_version()
            response = client.get(url, query)
            assert response.status_code == 200, response.status_code
            return response

        return get

    def claim() -> object:
        plan = worker.plan_for(rows[len(rows) // 2].pk)
        assert plan is not None
        return worker.claim(plan)

    everything = reverse("delivery_log")
    own = reverse("district_delivery_log", args=[district.slug])
    return {
        "claim a batch (500)": claim,
        "the sweep": due.configurations,
        "log, all districts, page 1": page(client_super, everything),
        "log, all districts, page 20": page(client_super, everything, page="20"),
        "log, all, status=failed": page(client_super, everything, status="failed"),
        "log, all, kind=resource_list": page(client_super, everything, kind="resource_list"),
        "log, all, last 7 days": page(client_super, everything, since=str(today - dt.timedelta(days=7))),
        "log, one district, page 1": page(client_admin, own),
        "log, one district, status=queued": page(client_admin, own, status="queued"),
        "log, one district, school + dates": page(
            client_admin, own, school=str(school.pk), since=str(today - dt.timedelta(days=30)), until=str(today)
        ),
    }


def measure(ops: dict[str, Callable]) -> dict[str, tuple[float, float, int]]:
    results = {}
    for name, action in ops.items():
        statements = captured(action)
        totals = [database_ms(statements) for _ in range(3)]
        best = min(totals)
        results[name] = (best[0], best[1], len(statements))
    return results


def people(district: District) -> tuple[User, User]:
    super_admin, _ = User.objects.get_or_create(username="scale-super")
    admin, _ = User.objects.get_or_create(username="scale-admin")
    Role.objects.get_or_create(user=super_admin, kind=RoleKind.SUPER_ADMIN)
    Role.objects.get_or_create(user=admin, kind=RoleKind.DISTRICT_ADMIN, district=district)
    return super_admin, admin


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def memory_run(rows: list[SmtpSettings], schools: list[School], seconds: float, tag: str) -> list[tuple[float, float]]:
    """One db_worker sends the due notices into smtp-sink, while more are queued every 2 s; its RSS every 5 s."""
    port = free_port()
    SmtpSettings.objects.filter(pk__in=[row.pk for row in rows]).update(port=port)
    samples = []
    with smtp_sink(port):
        command = [sys.executable, str(ROOT / "manage.py"), "db_worker", "--no-startup-delay", "--no-reload"]
        process = subprocess.Popen([*command, "--interval", "0.2", "-v", "0"])
        try:
            tasks.deliver.enqueue(rows[0].pk)
            started = time.monotonic()
            next_sample = started
            batch = 0
            while (elapsed := time.monotonic() - started) < seconds:
                if time.monotonic() >= next_sample:
                    samples.append((elapsed, rss_mb(process.pid)))
                    next_sample += 5
                batch += 1
                more = [
                    Notice(
                        kind="overdue",
                        school=schools[(batch * 7 + i) % len(schools)],
                        recipient_name=f"More {batch}.{i}",
                        recipient_email=f"more{batch}.{i}@scale.example.org",
                        items=[{"title": "Emma", "due": "2025-01-01"}],
                        message_id=f"<{tag}.more.{batch}.{i}@scale.example.org>",
                    )
                    for i in range(500)
                ]
                Notice.objects.bulk_create(more)
                tasks.deliver.enqueue(rows[(batch * 7) % len(rows)].pk)
                time.sleep(2)
            samples.append((time.monotonic() - started, rss_mb(process.pid)))
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return samples


def remove_notices(schools: list[School]) -> None:
    """In two statements: the ORM's delete would first read a million ids to cascade to the attempts."""
    ids = [school.pk for school in schools]
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM settings_app_deliveryattempt WHERE notice_id IN "
            "(SELECT id FROM settings_app_notice WHERE school_id = ANY(%s))",
            [ids],
        )
        cursor.execute("DELETE FROM settings_app_notice WHERE school_id = ANY(%s)", [ids])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=50_000)
    parser.add_argument("--configurations", type=int, default=500)
    parser.add_argument("--memory-seconds", type=float, default=120, help="0 skips the memory run")
    parser.add_argument("--explain", action="store_true", help="also print the slowest statements")
    parser.add_argument("--keep", action="store_true", help="leave the notices for --reuse (deleting takes minutes)")
    parser.add_argument("--reuse", action="store_true", help="measure the notices a --keep run left")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/scale.py measures PostgreSQL: set DATABASE_URL=postgres://...")
    call_command("migrate", verbosity=0)
    kept = District.objects.filter(name__startswith="Scale ", mail_source=MailSource.OWN).order_by("id")
    reuse = args.reuse and kept.exists()
    if reuse:
        tag = kept.first().name.split()[1]  # type: ignore[union-attr]
        districts = list(kept.filter(name__startswith=f"Scale {tag} "))
        schools = list(School.objects.filter(district__in=districts).order_by("id"))
        rows = list(SmtpSettings.objects.filter(district__in=districts).order_by("id"))
        first_district = districts[0].pk
    else:
        tag, rows, schools, first_district = make_scopes(args.configurations)
    district = District.objects.get(pk=first_district)
    try:
        super_admin, admin = people(district)
        ops = operations(rows, district, super_admin, admin)
        if reuse:
            print("reusing the notices a --keep run left (no empty-table reference)")
            empty = dict.fromkeys(ops, (0.0, 0.0, 0))
        else:
            vacuum()
            empty = measure(ops)
            took = fill(tag, schools, args.n, args.due)
            print(f"{args.n:,} notices ({args.due:,} due), {len(rows)} configurations: written in {took:.0f} s")
        full = measure(ops)
        print(f"{'operation':36} {'empty table':>20} {'1M notices':>24}  (database ms: total / slowest, queries)")
        for name in ops:
            e, f = empty[name], full[name]
            print(f"{name:36} {e[0]:8.1f} / {e[1]:5.1f} ({e[2]:3}) {f[0]:10.1f} / {f[1]:6.1f} ({f[2]:3})")
        worst = max(total for total, _, _ in full.values())
        if args.explain:
            for ms, sql in sorted(SLOWEST.values(), reverse=True)[:8]:
                print(f"  {ms:6.1f} ms  {sql[:400]}")
        samples = memory_run(rows, schools, args.memory_seconds, tag) if args.memory_seconds else [(0, 0), (0, 0)]
        if args.memory_seconds:
            print("worker RSS (MB) every 5 s: " + " ".join(f"{mb:.0f}" for _, mb in samples))
            since = timezone.now() - dt.timedelta(seconds=args.memory_seconds + 60)
            sent = Notice.objects.filter(school__in=schools, status=NoticeStatus.SENT, sent_at__gte=since).count()
            print(f"sent during the memory run: {sent:,}")
    finally:
        if not args.keep:
            remove_notices(schools)
            District.objects.filter(pk__in=[school.district_id for school in schools]).delete()
        vacuum()
    print(f"worst_ms={worst:.1f} (target < 50) rss_start_mb={samples[1][1]:.0f} rss_end_mb={samples[-1][1]:.0f}")


if __name__ == "__main__":
    main()
