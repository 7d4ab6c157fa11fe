"""Background work, run by `manage.py db_worker`. Arguments are ids, never secrets."""

from django.tasks import task

from settings_app.delivery import queue, schedule, worker


@task()
def deliver(settings_id: int) -> None:
    """Send the due notices of one SMTP configuration, as fast as its server and hourly cap allow."""
    worker.deliver(settings_id)


@task()
def sweep() -> None:
    """Re-enqueue delivery for whatever is due or was left behind by a lost worker, then run again later."""
    try:
        queue.sweep()
    finally:
        schedule.ensure_sweep(from_sweep=True)
