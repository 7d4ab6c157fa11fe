"""Background work, run by `manage.py db_worker`, and the one module that enqueues it.

Data flows one way: services (settings_app.delivery.queue, settings_app.services) call the enqueue functions
here; the tasks run the worker; the worker only reports when a configuration should run again, and its task
enqueues that. Task arguments are ids only, never secrets. Backends that cannot defer (the immediate backend in
tests) skip what would run later; the sweep, or the next staff action, picks that work up.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.tasks import TaskResultStatus, task
from django.utils import timezone
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult

from settings_app.delivery import due, rounds


@task()
def deliver(settings_id: int) -> None:
    """Send the due notices of one SMTP configuration, and of the others due too, side by side (see rounds.py)."""
    done = rounds.deliver_round(settings_id)
    for later_id, at in done.again.items():
        deliver_later(later_id, at=at)
    ensure_sweep()  # one query; brings the sweep back if the worker that ran it was killed
    if done.errors:
        raise ExceptionGroup("delivery runs failed", done.errors)


@task()
def sweep() -> None:
    """Re-enqueue delivery for whatever is due or was left behind by a lost worker, then run again later."""
    try:
        for settings_id in due.configurations():
            deliver.enqueue(settings_id)
    finally:
        ensure_sweep(from_sweep=True)


SWEEP_DEAD_AFTER = timedelta(minutes=5)


def sweep_interval() -> timedelta:
    return timedelta(seconds=settings.DELIVERY_SWEEP_INTERVAL)


def deliver_on_commit(settings_id: int) -> None:
    """Deliver through this configuration once the current transaction commits (and keep the sweep alive)."""
    transaction.on_commit(lambda: deliver.enqueue(settings_id))
    transaction.on_commit(ensure_sweep)


def deliver_later(settings_id: int, *, at: datetime) -> None:
    """Deliver through this configuration at `at` (now if it is past)."""
    if at <= timezone.now():
        deliver.enqueue(settings_id)
    elif deliver.get_backend().supports_defer:
        deliver.using(run_after=at).enqueue(settings_id)


def ensure_sweep(*, from_sweep: bool = False) -> None:
    """Start the self-rescheduling sweep unless one is already waiting (or, outside the sweep, running).

    A sweep takes milliseconds: one marked running for longer than SWEEP_DEAD_AFTER belongs to a worker that was
    killed, and no longer counts. Only the database backend keeps a sweep; elsewhere this does nothing.
    """
    if not isinstance(sweep.get_backend(), DatabaseBackend):
        return
    sweeps = DBTaskResult.objects.filter(task_path=sweep.module_path)
    alive = Q(status=TaskResultStatus.READY)
    if not from_sweep:
        alive |= Q(status=TaskResultStatus.RUNNING, started_at__gt=timezone.now() - SWEEP_DEAD_AFTER)
    if not sweeps.filter(alive).exists():
        sweep.using(run_after=timezone.now() + sweep_interval()).enqueue()
