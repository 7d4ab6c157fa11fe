"""Writes of the notice pipeline: queueing notices in the staff action's transaction, retrying, resuming, sweeping."""

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from settings_app import tasks
from settings_app.delivery.bulk import insert_rows
from settings_app.mail.message import new_message_id
from settings_app.models import (
    District,
    Loan,
    Notice,
    NoticeKind,
    NoticeStatus,
    Patron,
    School,
    SmtpSettings,
)
from settings_app.selectors import effective_settings


class EmailNotSetUp(Exception):
    """The school's district has no effective SMTP settings, so nothing can be queued."""


@dataclass(frozen=True, slots=True)
class Queued:
    queued: int
    already_waiting: int = 0


def clean_name(value: str) -> str:
    """A patron's name made safe for a header: control and separator characters become spaces."""
    spaced = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in value)
    return " ".join(spaced.split())[:200]


def _configuration(school: School) -> SmtpSettings:
    row = effective_settings(school.district).settings
    if row is None:
        raise EmailNotSetUp(f"Email is not set up for {school.district}.")
    return row


def overdue_loans(school: School, today: date) -> QuerySet[Loan]:
    """Open loans past their due date, of patrons at the school who can receive mail."""
    return Loan.objects.filter(
        patron__school=school,
        returned_on__isnull=True,
        due_on__lt=today,
        patron__address_refused_at__isnull=True,
    ).exclude(patron__email="")


def notices_queue_overdue(
    *,
    school: School,
    acting_user: User,
    sender_name: str = "",
    sender_email: str = "",
    today: date | None = None,
) -> Queued:
    """Queue one overdue notice per patron with overdue items; patrons with a notice still waiting are skipped.

    Raises EmailNotSetUp when the school's district has no mail server.
    """
    row = _configuration(school)
    today = today or timezone.localdate()
    domain = school.district.installation.effective_ehlo_name  # every attempt sends this same Message-ID
    with transaction.atomic():
        # One overdue run of a school at a time: two clicks must not queue two notices per patron.
        School.objects.select_for_update().filter(pk=school.pk).exists()
        waiting = set(
            Notice.objects.filter(
                school=school, kind=NoticeKind.OVERDUE, status__in=[NoticeStatus.QUEUED, NoticeStatus.SENDING]
            ).values_list("patron_id", flat=True)
        )
        by_patron: dict[int, dict] = {}
        loans = overdue_loans(school, today).order_by("patron_id", "due_on", "id")
        for patron_id, name, email, language, title, due_on in loans.values_list(
            "patron_id", "patron__name", "patron__email", "patron__language", "title", "due_on"
        ):
            entry = by_patron.setdefault(
                patron_id,
                {"name": name, "email": email, "language": language or school.district.default_language, "items": []},
            )
            entry["items"].append({"title": title, "due": due_on.isoformat()})
        now = timezone.now()
        notices = [
            {
                "kind": NoticeKind.OVERDUE,
                "school_id": school.pk,
                "patron_id": patron_id,
                "recipient_name": clean_name(entry["name"]),
                "recipient_email": entry["email"],
                "sender_name": sender_name,
                "sender_email": sender_email,
                "language": entry["language"],
                "items": entry["items"],
                "message_id": new_message_id(domain),
                "created_at": now,
                "queued_at": now,
                "next_attempt_at": now,
                "created_by_id": acting_user.pk,
            }
            for patron_id, entry in by_patron.items()
            if patron_id not in waiting
        ]
        insert_rows(Notice, notices)
        tasks.deliver_on_commit(row.pk)
    return Queued(len(notices), len(by_patron) - len(notices))


def notices_queue_resource_list(
    *,
    school: School,
    acting_user: User,
    recipients: Sequence[str],
    titles: Sequence[str],
    note: str = "",
    sender_name: str = "",
    sender_email: str = "",
) -> Queued:
    """Queue one Resource List message per recipient (raises EmailNotSetUp without a mail server)."""
    row = _configuration(school)
    domain = school.district.installation.effective_ehlo_name  # every attempt sends this same Message-ID
    known = Patron.objects.filter(school=school, email__in=recipients).values_list("email", "id", "name", "language")
    patrons = {email: (pk, name, language) for email, pk, name, language in known}
    default_language = school.district.default_language  # addresses of no patron, and patrons who chose none
    now = timezone.now()
    with transaction.atomic():
        notices = [
            {
                "kind": NoticeKind.RESOURCE_LIST,
                "school_id": school.pk,
                "patron_id": patrons.get(address, (None, "", ""))[0],
                "recipient_name": clean_name(patrons.get(address, (None, "", ""))[1]),
                "language": patrons.get(address, (None, "", ""))[2] or default_language,
                "recipient_email": address,
                "sender_name": sender_name,
                "sender_email": sender_email,
                "note": note,
                "items": [{"title": title} for title in titles],
                "message_id": new_message_id(domain),
                "created_at": now,
                "queued_at": now,
                "next_attempt_at": now,
                "created_by_id": acting_user.pk,
            }
            for address in dict.fromkeys(recipients)
        ]
        insert_rows(Notice, notices)
        tasks.deliver_on_commit(row.pk)
    return Queued(len(notices))


def notices_retry(*, notices: QuerySet[Notice], acting_user: User) -> int:
    """Put failed notices back in the queue, due now, with their Message-ID unchanged; returns how many."""
    with transaction.atomic():
        failed = list(notices.filter(status=NoticeStatus.FAILED).select_related("school__district__installation"))
        now = timezone.now()
        Notice.objects.filter(id__in=[n.pk for n in failed]).update(
            status=NoticeStatus.QUEUED, failed_at=None, gave_up=False, next_attempt_at=now, queued_at=now
        )
        for settings_id in {_configuration_id(n.school.district) for n in failed}:
            if settings_id is not None:
                tasks.deliver_on_commit(settings_id)
    return len(failed)


def _configuration_id(district: District) -> int | None:
    row = effective_settings(district).settings
    return row.pk if row else None


def resume(settings_id: int) -> None:
    """Send what waited while the configuration was paused: call after clearing the pause (e.g. a good Test Server)."""
    tasks.deliver_on_commit(settings_id)
