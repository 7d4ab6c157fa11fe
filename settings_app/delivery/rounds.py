"""A worker's delivery round: every configuration with notices due, several side by side on one event loop.

A `db_worker` process runs one task at a time, and one configuration's run waits on its server: a server that
accepts the connection and never greets holds the run for SMTP_CONNECT_TIMEOUT, one that answers slowly for as long
as RUN_SECONDS. Run one after another, a handful of such servers would hold every worker while healthy
configurations' notices wait. So the `deliver` task of any configuration runs a round: up to DELIVERY_CONCURRENCY
configurations at once on one event loop, each within its own deadlines (the connector's per-step and total
timeouts, the batch lease), free slots refilled whenever a run ends, from the task queue every POLL_EVERY seconds
and from every due notice every REFILL_EVERY seconds, until nothing else is due or the round has lasted
DELIVERY_ROUND_SECONDS (then it lets its runs finish, each bounded by its deadlines, and the worker takes its next
task). A silent server then holds one slot, not a worker. The database work of every run goes through the worker's
one thread and connection (thread-sensitive sync_to_async), so a worker still holds a single database connection
however many runs it interleaves.

Two workers' rounds may pick the same configuration: their claims share its due notices (SKIP LOCKED), but only one
of them opens a session to its server at a time (DeliveryState.opening_until), so a silent server costs one slot in
the whole installation, not one per worker. A configuration whose server timed out or refused backs off
(worker.connection_failed: exponential with jitter, stored on DeliveryState so every worker honours it) and is left
out of rounds until then.
"""

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.utils import timezone

from settings_app.delivery import due, worker

logger = logging.getLogger(__name__)

# While runs are under way, a round looks at the task queue this often (seconds) for configurations a staff action
# just queued notices for: one indexed query. Without it a notice queued while a silent server held the round open
# waited for the next full look (bench/isolation.py, PostgreSQL: healthy p95 0.84-1.11 s against 0.16-0.30 s
# without broken servers when rounds looked every 0.5 s; with it 0.25 s against 0.30 s).
POLL_EVERY = 0.1
# ... and this often at every notice due (retries coming due, leases of killed workers ending): three queries, the
# first of which reads the due notices (tens of milliseconds with 50,000 due).
REFILL_EVERY = 1.0
# A configuration runs again in the same round only after this rest (more was queued, a retry came due).
REST = 0.2


@dataclass
class Round:
    """What a round did: the configurations it ran (in order, again if they ran again), when some should run again
    after it, and any run that crashed."""

    ran: list[int] = field(default_factory=list)
    again: dict[int, datetime] = field(default_factory=dict)
    errors: list[Exception] = field(default_factory=list)

    def run_again(self, settings_id: int, at: datetime | None) -> None:
        if at is not None:
            self.again[settings_id] = min(at, self.again.get(settings_id, at))


def deliver_round(first_id: int, *, concurrency: int | None = None, seconds: float | None = None) -> Round:
    """Run `first_id` and every other configuration with notices due, up to `concurrency` at once.

    Returns the Round; a run that raised does not stop the others, and is in `errors`.
    """
    limit = concurrency or settings.DELIVERY_CONCURRENCY
    budget = seconds if seconds is not None else settings.DELIVERY_ROUND_SECONDS
    return async_to_sync(_round)(first_id, limit, budget)


async def _round(first_id: int, limit: int, budget: float) -> Round:
    loop = asyncio.get_running_loop()
    ends = loop.time() + budget
    result = Round()
    waiting: deque[int] = deque([first_id])
    running: dict[asyncio.Task[datetime | None], int] = {}
    # Never twice at once, never in a loop: a configuration rests after each run; one whose run raised rests until
    # the round ends.
    resting: dict[int, float] = {}
    refill, poll = sync_to_async(due.configurations), sync_to_async(due.announced)
    refilled = loop.time() - REFILL_EVERY  # the first look reads every due notice
    started: dict[int, datetime] = {}  # when each configuration's last run in this round began
    polled = timezone.now()

    def ready(settings_id: int) -> bool:
        return settings_id not in running.values() and resting.get(settings_id, 0.0) <= loop.time()

    def news(announced: list[tuple[int, datetime]]) -> list[int]:
        # A task stays queued while the round runs its configuration: only one enqueued since that run began (its
        # notices committed before it was enqueued) can bring anything new.
        return [pk for pk, at in announced if pk not in started or at >= started[pk]]

    while True:
        while waiting and len(running) < limit:
            settings_id = waiting.popleft()
            if ready(settings_id):
                result.ran.append(settings_id)
                started[settings_id] = timezone.now()
                running[asyncio.create_task(worker.deliver_async(settings_id))] = settings_id
        if not waiting and len(running) < limit and loop.time() < ends:
            full = not running or loop.time() - refilled >= REFILL_EVERY
            if full:
                found = await refill()
            else:
                # A second's margin for the clocks of the processes that enqueue; news() drops what was seen.
                asked, since = timezone.now(), polled - timedelta(seconds=1)
                found = news(await poll(since, limit))
                polled = asked
            refilled = loop.time() if full else refilled
            waiting.extend(pk for pk in found if ready(pk))
            if waiting:
                continue
        if not running:
            return result
        # Wake up now and then even if no run ends, so newly due configurations never wait for a silent server.
        timeout = POLL_EVERY if loop.time() < ends else None
        done, _ = await asyncio.wait(running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            settings_id = running.pop(task)
            failed = _finished(result, settings_id, task)
            resting[settings_id] = ends if failed else loop.time() + REST


def _finished(result: Round, settings_id: int, task: "asyncio.Task[datetime | None]") -> bool:
    """Note a run's outcome; True when it raised."""
    error = task.exception()
    if error is None:
        result.run_again(settings_id, task.result())
        return False
    if isinstance(error, Exception):
        logger.error("Delivery through SMTP settings %s failed", settings_id, exc_info=error)
        result.errors.append(error)
        return True
    raise error
