"""Which SMTP configurations have notices due now: read by the sweep and by a worker's delivery round."""

from datetime import datetime

from django.db.models import Q
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from settings_app.models import District, MailSource, Notice, SmtpSettings

# The path of the deliver task (settings_app.tasks.deliver), named rather than imported: tasks imports this module.
DELIVER_TASK = "settings_app.tasks.deliver"


def configurations(now: datetime | None = None) -> list[int]:
    """Ids of the configurations that have notices due and can send now, in three queries.

    Left out: paused configurations (a good Test Server resumes them), those backing off or at their hourly cap
    (their own task is enqueued for when that ends, and the sweep finds them then) and those a worker is opening
    a session to (that worker's run carries on).
    """
    now = now or timezone.now()
    school_ids = Notice.objects.due(now).values("school_id").distinct()
    districts = District.objects.filter(schools__in=school_ids).values_list("id", "installation_id", "mail_source")
    own, consortium = set(), set()
    for district_id, installation_id, source in districts.distinct():
        if source == MailSource.OWN:
            own.add(district_id)
        else:
            consortium.add(installation_id)
    if not own and not consortium:
        return []
    rows = SmtpSettings.objects.filter(Q(district_id__in=own) | Q(installation_id__in=consortium))
    rows = rows.filter(paused_at__isnull=True).exclude(
        Q(delivery_state__not_before__gt=now)
        | Q(delivery_state__cap_full_until__gt=now)
        | Q(delivery_state__opening_until__gt=now)
    )
    return list(rows.order_by("id").values_list("id", flat=True))


def announced(since: datetime, limit: int) -> list[tuple[int, datetime]]:
    """(configuration, when) for deliver tasks enqueued since `since` and still waiting in the queue (a staff action
    just queued notices), oldest first.

    One query on the task table's index of ready tasks: cheap enough for a round to ask every tenth of a second,
    where configurations() reads the notices.
    """
    ready = DBTaskResult.objects.ready().filter(task_path=DELIVER_TASK, enqueued_at__gte=since)
    found = ready.order_by("enqueued_at").values_list("args_kwargs", "enqueued_at")[:limit]
    return [(args["args"][0], at) for args, at in found]
