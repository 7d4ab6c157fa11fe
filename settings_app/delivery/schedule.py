"""Enqueueing the delivery tasks: after the staff action commits, later when a cap or back-off says so, and the sweep.

Task arguments are ids only. Backends that cannot defer (the immediate backend in tests) skip what would run later;
the sweep, or the next staff action, picks that work up.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone


def sweep_interval() -> timedelta:
    return timedelta(seconds=settings.DELIVERY_SWEEP_INTERVAL)


def deliver_on_commit(settings_id: int) -> None:
    """Deliver through this configuration once the current transaction commits (and keep the sweep alive)."""
    from settings_app import tasks

    transaction.on_commit(lambda: tasks.deliver.enqueue(settings_id))
    transaction.on_commit(ensure_sweep)


def deliver_later(settings_id: int, *, at: datetime) -> None:
    from settings_app import tasks

    backend = tasks.deliver.get_backend()
    if at <= timezone.now():
        tasks.deliver.enqueue(settings_id)
    elif backend.supports_defer:
        tasks.deliver.using(run_after=at).enqueue(settings_id)


def ensure_sweep(*, from_sweep: bool = False) -> None:
    """Start the self-rescheduling sweep unless one is already waiting (or, outside the sweep, running).

    Only the database backend keeps a sweep; elsewhere this does nothing.
    """
    from django.tasks import TaskResultStatus
    from django_tasks_db.backend import DatabaseBackend
    from django_tasks_db.models import DBTaskResult

    from settings_app import tasks

    if not isinstance(tasks.sweep.get_backend(), DatabaseBackend):
        return
    statuses = [TaskResultStatus.READY] if from_sweep else [TaskResultStatus.READY, TaskResultStatus.RUNNING]
    if not DBTaskResult.objects.filter(task_path=tasks.sweep.module_path, status__in=statuses).exists():
        tasks.sweep.using(run_after=timezone.now() + sweep_interval()).enqueue()
