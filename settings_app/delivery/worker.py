"""The delivery worker: claim due notices of one SMTP configuration, send them over one connection, book in bulk.

Many workers may serve one database. Each batch reserves slots of the configuration's hourly cap, claims due
notices with SELECT ... FOR UPDATE SKIP LOCKED and a lease, writes them with the fast renderer and sends them
through one pipelined SMTP session, booking the outcomes with a handful of bulk statements every few dozen
messages or tenth of a second. A worker that dies leaves leased rows behind; once the lease expires any worker
claims them again, counted as possible duplicates: the last unbooked messages may have reached the server.
The sweep re-enqueues delivery for anything due."""

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, PositiveSmallIntegerField, Q, QuerySet, When
from django.utils import timezone

from settings_app import crypto
from settings_app.delivery import cap, policy, render
from settings_app.delivery.bulk import insert_rows
from settings_app.delivery.connection import mail_session
from settings_app.delivery.pipeline import Outgoing, PipelinedSender, Result, Stage
from settings_app.delivery.policy import Action, Verdict
from settings_app.mail.config import SmtpConfig
from settings_app.mail.diagnosis import Category, SmtpProblem
from settings_app.models import (
    AttemptOutcome,
    DeliveryAttempt,
    DeliveryState,
    District,
    MailSource,
    Notice,
    NoticeStatus,
    Patron,
    School,
    SmtpSettings,
)
from settings_app.selectors import stored_smtp_config

logger = logging.getLogger(__name__)

# A run hands over to a fresh task (and connection) after this long, so one configuration never hogs a worker.
RUN_SECONDS = 20.0
# Outcomes are booked at least this often (messages, seconds): a worker that dies can leave no more than this
# delivered but unbooked.
BOOK_EVERY = 50
BOOK_WITHIN = 0.1
_NOTICE_FIELDS = (
    "id",
    "kind",
    "school_id",
    "patron_id",
    "recipient_name",
    "recipient_email",
    "sender_name",
    "sender_email",
    "note",
    "language",
    "items",
    "message_id",
    "created_at",
    "attempts",
)
_OUTCOMES = {
    Action.SENT: AttemptOutcome.SENT,
    Action.RETRY: AttemptOutcome.DEFERRED,
    Action.BUSY: AttemptOutcome.DEFERRED,
    Action.UNCONFIRMED: AttemptOutcome.UNCONFIRMED,
    Action.FAIL: AttemptOutcome.FAILED,
    Action.PAUSE: AttemptOutcome.PAUSED,
}


def served_districts(row: SmtpSettings) -> Iterable[District]:
    """The districts whose effective settings are `row`."""
    if row.district_id is not None:
        district = row.district
        return [district] if district is not None and district.mail_source == MailSource.OWN else []
    return District.objects.filter(installation=row.installation, mail_source=MailSource.CONSORTIUM)


@dataclass
class Plan:
    """What one run needs, read before any async code: the configuration, its schools and senders."""

    settings_id: int
    config: SmtpConfig
    envelope_sender: str
    default_sender: tuple[str, str]
    divert_to: str
    schools: dict[int, tuple[str, str]]  # id -> (school, district)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    writer: render.NoticeWriter = field(default_factory=render.NoticeWriter)
    again: datetime | None = None  # when the configuration should run again: its task enqueues that

    def run_again(self, at: datetime) -> None:
        self.again = at if self.again is None else min(self.again, at)

    @property
    def school_ids(self) -> list[int]:
        return list(self.schools)


def plan_for(settings_id: int) -> Plan | None:
    """What a run of the configuration needs, read before any async code; None when it is paused or serves no school
    (it pauses a configuration whose stored password cannot be read)."""
    row = SmtpSettings.objects.select_related("installation", "district__installation").filter(pk=settings_id).first()
    if row is None or row.paused_at is not None:
        return None
    installation = row.installation or row.district.installation  # type: ignore[union-attr]
    schools = {
        pk: (name, district)
        for pk, name, district in School.objects.filter(district__in=list(served_districts(row))).values_list(
            "id", "name", "district__name"
        )
    }
    if not schools:
        return None
    try:
        config = stored_smtp_config(row, installation)
    except crypto.CredentialsUnreadable:
        pause(row.pk, Category.OAUTH_SECRET_UNREADABLE if row.uses_oauth else Category.PASSWORD_REQUIRED)
        return None
    default_sender = render.sender_of(row)
    return Plan(
        settings_id=row.pk,
        config=config,
        envelope_sender=render.ascii_address(default_sender[1]),
        default_sender=default_sender,
        divert_to=installation.divert_all_to,
        schools=schools,
    )


def pause(settings_id: int, category: str, reply: str = "") -> None:
    """Stop delivery through a configuration until a successful Test Server clears the pause.

    The category says why, in the reader's language when shown; `reply` keeps the server's own words beside it.
    """
    updated = SmtpSettings.objects.filter(pk=settings_id, paused_at__isnull=True).update(
        paused_at=timezone.now(), pause_category=category, pause_detail=reply[:500]
    )
    if updated:
        logger.warning("Delivery paused for SMTP settings %s: %s", settings_id, category)


@dataclass
class Batch:
    """Claimed notices, handed to the sender a chunk at a time, each chunk booked before the next one goes out."""

    grant: cap.Grant
    rows: dict[int, dict]
    deadline: datetime
    waiting: deque[int] = field(init=False)  # not attempted yet, in claim order
    transmitted: int = 0  # messages whose content went out in full: the cap slots used
    # False when the claim found fewer due notices than it had slots for: claiming again right after would find
    # none (work queued meanwhile has its own task). Skipping that claim saves a third of a short run's queries.
    more_due: bool = True

    def __post_init__(self) -> None:
        self.waiting = deque(self.rows)

    def take(self, count: int) -> list[int]:
        return [self.waiting.popleft() for _ in range(min(count, len(self.waiting)))]

    def put_back(self, ids: list[int]) -> None:
        self.waiting.extendleft(reversed(ids))


@dataclass
class Chunk:
    ids: list[int]
    results: list[Result] = field(default_factory=list)
    refused: list[Result] = field(default_factory=list)  # could not be written (an address SMTP cannot carry)

    def outgoing(self, plan: "Plan", rows: dict[int, dict]) -> Iterator[Outgoing]:
        """Each notice as bytes, written only when the sender asks for it (while it waits for the server)."""
        for pk in self.ids:
            row = rows[pk]
            try:
                data = plan.writer.message(_letterhead(plan, row), _letter(row))
                recipient = render.ascii_address(plan.divert_to or row["recipient_email"])
            except ValueError:
                # No server said anything: the category (an invalid address) is the whole story, worded when shown.
                self.refused.append(Result(pk, False, Stage.RCPT, None, "", False))
                continue
            yield Outgoing(pk, recipient, data)

    @property
    def unattempted(self) -> list[int]:
        done = {result.key for result in [*self.refused, *self.results]}
        return [pk for pk in self.ids if pk not in done]


def _letterhead(plan: Plan, row: dict) -> render.Letterhead:
    school, district = plan.schools[row["school_id"]]
    name, email = (row["sender_name"], row["sender_email"]) if row["sender_email"] else plan.default_sender
    return render.Letterhead(row["kind"], school, district, name, email, bool(plan.divert_to), row["language"])


def _letter(row: dict) -> render.Letter:
    return render.Letter(
        recipient_name=row["recipient_name"],
        recipient_email=row["recipient_email"],
        note=row["note"],
        items=row["items"],
        message_id=row["message_id"],
        date=row["created_at"],
    )


def claim(plan: Plan) -> Batch | None:
    """Reserve cap slots and lease that many due notices; None when there is nothing to do now."""
    grant = cap.reserve(plan.settings_id, wanted=policy.batch_size(), hold=policy.lease())
    if not grant.count:
        if grant.next_free_at:
            plan.run_again(grant.next_free_at)
            DeliveryState.objects.filter(smtp_settings_id=plan.settings_id).update(cap_full_until=grant.next_free_at)
        return None
    now = timezone.now()
    lease_until = now + policy.lease()
    pending = Notice.objects.due(now).filter(school_id__in=plan.school_ids)
    with transaction.atomic():
        ids = list(
            pending.order_by("next_attempt_at", "id")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[: grant.count]
        )
        Notice.objects.filter(id__in=ids).update(
            status=NoticeStatus.SENDING,
            lease_until=lease_until,
            lease_token=plan.token,
            # A lease that ran out may have left the message at the server: sending again may duplicate it.
            possible_duplicates=Case(
                When(status=NoticeStatus.SENDING, then=F("possible_duplicates") + 1),
                default=F("possible_duplicates"),
                output_field=PositiveSmallIntegerField(),
            ),
        )
    if not ids:
        cap.settle(grant, used=0)
        return None
    more_due = len(ids) == grant.count
    return Batch(cap.shrink(grant, len(ids)), _rows(ids), deadline=lease_until, more_due=more_due)


def _rows(ids: list[int]) -> dict[int, dict]:
    return {row["id"]: row for row in Notice.objects.filter(id__in=ids).order_by("id").values(*_NOTICE_FIELDS)}


def _held(plan: Plan) -> QuerySet[Notice]:
    """The notices this run still holds. A lease token is set only while its notices are sending, and filtering
    on it (not on the status too) keeps PostgreSQL on the primary key rather than the status index."""
    return Notice.objects.filter(lease_token=plan.token)


def record(plan: Plan, batch: Batch, chunk: Chunk, *, last: bool, broken: bool = False) -> None:
    """Book one chunk's outcomes in bulk. After the `last` chunk, whatever was not attempted goes back to the queue
    untouched and the batch's cap slots are settled."""
    now = timezone.now()
    verdicts = {result.key: policy.judge(result) for result in [*chunk.refused, *chunk.results]}
    batch.transmitted += sum(result.transmitted for result in chunk.results)
    with transaction.atomic():
        resume_at = now
        if broken or any(v.action is Action.BUSY for v in verdicts.values()):
            resume_at = _back_off(plan.settings_id, now, verdicts)
        owned = _held(plan)
        sent = [pk for pk, verdict in verdicts.items() if verdict.action is Action.SENT]
        owned.filter(id__in=sent).update(
            status=NoticeStatus.SENT,
            sent_at=now,
            attempts=F("attempts") + 1,
            lease_until=None,
            lease_token="",
            last_category="",
            gave_up=False,
            last_reply="",
            smtp_settings_id=plan.settings_id,
        )
        _book_others(plan, verdicts, now, resume_at)
        insert_rows(
            DeliveryAttempt,
            [
                {
                    "notice_id": pk,
                    "at": now,
                    "smtp_settings_id": plan.settings_id,
                    "outcome": _OUTCOMES[verdict.action],
                    "category": verdict.category,
                    "reply_code": verdict.code,
                    "reply": verdict.reply[:500],
                }
                for pk, verdict in verdicts.items()
            ],
        )
        if last:
            if resume_at == now:
                DeliveryState.objects.filter(smtp_settings_id=plan.settings_id, busy_streak__gt=0).update(busy_streak=0)
            owned.filter(id__in=[*chunk.unattempted, *batch.waiting]).update(
                status=NoticeStatus.QUEUED, lease_until=None, lease_token="", next_attempt_at=resume_at
            )
            cap.settle(batch.grant, used=batch.transmitted)
            _pause_if_needed(plan, verdicts)
    if resume_at > now:
        plan.run_again(resume_at)


def _back_off(settings_id: int, now: datetime, verdicts: dict[int, Verdict]) -> datetime:
    """Hold the whole configuration back after a 421 or a lost server; returns when it may send again."""
    state = cap.lock_state(settings_id)
    state.busy_streak += 1
    state.not_before = now + policy.busy_delay(state.busy_streak)
    busy = next((v for v in verdicts.values() if v.action is Action.BUSY), None)
    state.busy_category = busy.category if busy else Category.CONNECTION_LOST
    state.busy_reply = busy.reply[:500] if busy else ""
    state.save(update_fields=["busy_streak", "not_before", "busy_category", "busy_reply"])
    return state.not_before


def _book_others(plan: Plan, verdicts: dict[int, Verdict], now: datetime, resume_at: datetime) -> None:
    """Every outcome but success: a few rows per chunk, so one bulk_update. The run is asked to come back when the
    first of them is due again, so a retry never waits for the sweep."""
    others = {pk: v for pk, v in verdicts.items() if v.action is not Action.SENT}
    if not others:
        return
    notices = list(_held(plan).filter(id__in=others))
    refused_patrons: dict[int, str] = {}
    for notice in notices:
        verdict = others[notice.pk]
        _apply(notice, verdict, now, resume_at)
        notice.smtp_settings_id = plan.settings_id
        if verdict.category == Category.RECIPIENT_REJECTED and notice.patron_id:
            refused_patrons[notice.patron_id] = verdict.reply[:500]
    Notice.objects.bulk_update(
        notices,
        [
            "status",
            "attempts",
            "next_attempt_at",
            "lease_until",
            "lease_token",
            "failed_at",
            "last_category",
            "gave_up",
            "last_reply",
            "possible_duplicates",
            "smtp_settings",
        ],
    )
    for patron_id, reply in refused_patrons.items():
        Patron.objects.filter(pk=patron_id).update(address_refused_at=now, address_refused_reply=reply)
    retries = [notice.next_attempt_at for notice in notices if notice.status == NoticeStatus.QUEUED]
    if retries:
        plan.run_again(min(retries))


def _apply(notice: Notice, verdict: Verdict, now: datetime, resume_at: datetime) -> None:
    notice.attempts += 1
    notice.lease_until, notice.lease_token = None, ""
    notice.last_category, notice.last_reply = verdict.category, verdict.reply[:500]
    notice.status = NoticeStatus.QUEUED
    if verdict.action is Action.UNCONFIRMED:
        notice.possible_duplicates += 1
    if verdict.action is Action.PAUSE:
        notice.next_attempt_at = now
        return
    if verdict.action is not Action.FAIL and policy.gives_up(notice.queued_at, now):
        notice.gave_up = True
        verdict = Verdict(Action.FAIL, verdict.category, verdict.reply, verdict.code)
    if verdict.action is Action.FAIL:
        notice.status, notice.failed_at = NoticeStatus.FAILED, now
        return
    notice.next_attempt_at = max(now + policy.retry_delay(notice.attempts), resume_at)


def _pause_if_needed(plan: Plan, verdicts: dict[int, Verdict]) -> None:
    problem = next((v for v in verdicts.values() if v.action is Action.PAUSE), None)
    if problem is not None:
        pause(plan.settings_id, problem.category, problem.reply)


def connection_failed(plan: Plan, problem: SmtpProblem) -> None:
    """The session could not be opened: pause for configuration problems, else back off the configuration."""
    verdict = policy.connection_verdict(str(problem.category), problem.reply)
    now = timezone.now()
    if verdict.action is Action.PAUSE:
        pause(plan.settings_id, verdict.category, problem.reply)
        return
    with transaction.atomic():
        resume_at = _back_off(plan.settings_id, now, {0: verdict})
        Notice.objects.due(now).filter(school_id__in=plan.school_ids).filter(status=NoticeStatus.QUEUED).update(
            last_category=verdict.category, next_attempt_at=resume_at
        )
        # Notices carry only the category: their log is shown to districts that may not see the server's details.
        _give_up_waiting(plan, now, verdict.category)
    plan.run_again(resume_at)


def _give_up_waiting(plan: Plan, now: datetime, category: str) -> None:
    Notice.objects.filter(
        status=NoticeStatus.QUEUED, school_id__in=plan.school_ids, queued_at__lte=now - policy.give_up_after()
    ).update(status=NoticeStatus.FAILED, failed_at=now, gave_up=True, last_category=category)


def _stops_run(result: Result) -> bool:
    return policy.judge(result).action is Action.PAUSE


def release(plan: Plan, batch: Batch) -> None:
    """Give back what a batch still holds (the session could not be opened, or was lost)."""
    _held(plan).filter(id__in=batch.rows).update(status=NoticeStatus.QUEUED, lease_until=None, lease_token="")
    cap.settle(batch.grant, used=batch.transmitted)


async def _run(plan: Plan) -> None:
    """Claim, send and book batches over one session, unless another worker is opening a session to the server."""
    turn = await sync_to_async(take_opening_turn)(plan.settings_id)
    if turn is None:
        return  # another worker is opening a session to this server: its run carries on with what is due
    ended = False

    async def end_turn() -> None:
        nonlocal ended
        if not ended:
            ended = True
            await sync_to_async(end_opening_turn)(plan.settings_id, turn)

    try:
        await _claim_and_send(plan, on_open=end_turn)
    finally:
        await end_turn()


async def _claim_and_send(plan: Plan, *, on_open: Callable[[], Awaitable[None]]) -> None:
    """Claim, send and book batches over one session until nothing is due, the cap is reached or time is up.

    Sending and bookkeeping alternate rather than overlap in a thread: the event loop waiting for the GIL behind
    a busy ORM thread costs more than it saves. Writing the next message while the server answers the current
    one is where the overlap is.
    """
    claim_next, give_back = sync_to_async(claim), sync_to_async(release)
    started = time.monotonic()
    batch = await claim_next(plan)
    if batch is None:
        return
    opened = False
    try:
        async with mail_session(plan.config) as sender:
            opened = True
            await on_open()
            while batch is not None:
                if await _deliver(sender, plan, batch) or not batch.more_due:
                    return
                if time.monotonic() - started > RUN_SECONDS:
                    # More may be due: a fresh task (and connection) carries on, so others get a turn.
                    plan.run_again(timezone.now())
                    return
                batch = await claim_next(plan)
    except SmtpProblem as problem:
        if batch is not None:
            await give_back(plan, batch)
        await sync_to_async(connection_failed)(plan, problem)
    except Exception:
        # Before the session opened nothing went out: give the batch back now rather than when its lease ends
        # (which would count each notice as a possible duplicate). After, its lease decides.
        if not opened and batch is not None:
            await give_back(plan, batch)
        raise


async def _deliver(sender: PipelinedSender, plan: Plan, batch: Batch) -> bool:
    """Send a batch a chunk at a time, booking each chunk before the next goes out; True when the run must stop.

    A chunk ends after BOOK_EVERY messages or BOOK_WITHIN seconds, whichever comes first, so a worker that dies
    can have left at most that much delivered but unbooked (sent again once its lease ends, and counted).
    """
    book = sync_to_async(record)
    loop = asyncio.get_running_loop()
    # A message started just before the lease's end may still wait for each of its replies: two when pipelining
    # (envelope, content), four otherwise. Leave room for them, so none goes out on an expired lease.
    replies = 2 if sender.pipelining else 4
    seconds_left = (batch.deadline - timezone.now()).total_seconds() - replies * sender.timeout - 1
    lease_ends = loop.time() + seconds_left
    while True:
        chunk = Chunk(batch.take(BOOK_EVERY))
        deadline = min(lease_ends, loop.time() + BOOK_WITHIN)
        outgoing = chunk.outgoing(plan, batch.rows)
        chunk.results = await sender.send(plan.envelope_sender, outgoing, stop=_stops_run, deadline=deadline)
        stop = sender.broken or any(map(_stops_run, chunk.results))
        last = stop or loop.time() >= lease_ends or not (batch.waiting or chunk.unattempted)
        if not last:
            batch.put_back(chunk.unattempted)  # the chunk's time ran out before they started
        await book(plan, batch, chunk, last=last, broken=sender.broken)
        if last:
            return stop


def backing_off_until(settings_id: int) -> datetime | None:
    """When a configuration that was told to wait (a 421, an unreachable server) may send again; None if now."""
    state = DeliveryState.objects.filter(smtp_settings_id=settings_id).values_list("not_before", flat=True).first()
    return state if state and state > timezone.now() else None


def take_opening_turn(settings_id: int) -> datetime | None:
    """Take the turn to open a session to the configuration's server, for at most the session's total timeout.

    Returns the turn's end (to hand it back), or None while another worker holds it.
    """
    now = timezone.now()
    until = now + timedelta(seconds=settings.SMTP_TOTAL_TIMEOUT)
    DeliveryState.objects.get_or_create(smtp_settings_id=settings_id)
    free = Q(opening_until__isnull=True) | Q(opening_until__lt=now)
    taken = DeliveryState.objects.filter(free, smtp_settings_id=settings_id).update(opening_until=until)
    return until if taken else None


def end_opening_turn(settings_id: int, turn: datetime) -> None:
    DeliveryState.objects.filter(smtp_settings_id=settings_id, opening_until=turn).update(opening_until=None)


def ready_plan(settings_id: int) -> Plan | None:
    """plan_for(), or None when the configuration has nothing due either."""
    plan = plan_for(settings_id)
    if plan is None or not Notice.objects.due(timezone.now()).filter(school_id__in=plan.school_ids).exists():
        return None
    return plan


async def deliver_async(settings_id: int) -> datetime | None:
    """Send what is due through one configuration; returns when it should run again, if it should."""
    waiting = await sync_to_async(backing_off_until)(settings_id)
    if waiting:
        return waiting
    plan = await sync_to_async(ready_plan)(settings_id)
    if plan is None:
        return None
    await _run(plan)
    return plan.again


def deliver(settings_id: int) -> datetime | None:
    """Send what is due through this one configuration only (see rounds.deliver_round for the task's way)."""
    return async_to_sync(deliver_async)(settings_id)
