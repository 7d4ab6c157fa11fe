"""Reads for the notice pages and the delivery log."""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db.models import Count, Prefetch, QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from settings_app.delivery import cap, render
from settings_app.delivery.queue import overdue_loans
from settings_app.models import (
    DeliveryAttempt,
    District,
    Installation,
    Notice,
    NoticeStatus,
    Patron,
    School,
    SmtpSettings,
)
from settings_app.selectors import district_statuses, pause_advice


def default_sender_label(row: SmtpSettings | None) -> str:
    name, address = render.sender_of(row)
    return f"{name} <{address}>" if name else address


@dataclass(frozen=True, slots=True)
class LanguageCount:
    code: str
    name: str  # in the reader's language
    count: int


@dataclass(frozen=True, slots=True)
class OverdueSummary:
    # Annotated with `overdue` (a count), and `language` resolved to the district's default when blank.
    patrons: Sequence[Patron]
    items: int

    @property
    def reachable(self) -> int:
        return sum(1 for patron in self.patrons if _reachable(patron))

    @property
    def by_language(self) -> list[LanguageCount]:
        """How many of the notices Send would queue go out in each language, in the order of LANGUAGES."""
        counted = Counter(patron.language for patron in self.patrons if _reachable(patron))
        return [LanguageCount(code, str(name), counted[code]) for code, name in settings.LANGUAGES if counted[code]]


def _reachable(patron: Patron) -> bool:
    return bool(patron.email) and not patron.address_refused


def overdue_summary(school: School, today: date | None = None) -> OverdueSummary:
    """Patrons of the school with overdue items (including those whose address was refused, flagged)."""
    today = today or timezone.localdate()
    patrons = list(
        Patron.objects.filter(school=school, loans__returned_on__isnull=True, loans__due_on__lt=today)
        .annotate(overdue=Count("loans"))
        .order_by("name", "id")
    )
    for patron in patrons:
        patron.language = patron.language or school.district.default_language
    return OverdueSummary(patrons, sum(patron.overdue for patron in patrons))


@dataclass(frozen=True, slots=True)
class Preview:
    language: str
    language_name: str  # in the reader's language
    patron: str
    subject: str
    text: str
    html: str


def overdue_previews(school: School, row: SmtpSettings | None, today: date | None = None) -> list[Preview]:
    """The notice the first reachable patron of each language would get, in the order of LANGUAGES (empty when
    nobody would get one)."""
    today = today or timezone.localdate()
    loans = list(overdue_loans(school, today).select_related("patron").order_by("patron__name", "patron_id", "due_on"))
    first: dict[str, Patron] = {}
    for loan in loans:
        first.setdefault(loan.patron.language or school.district.default_language, loan.patron)
    name, address = render.sender_of(row)
    diverted = bool(school.district.installation.divert_all_to)
    previews = []
    for code, language_name in settings.LANGUAGES:
        patron = first.get(code)
        if patron is None:
            continue
        items = [{"title": loan.title, "due": loan.due_on.isoformat()} for loan in loans if loan.patron_id == patron.pk]
        letterhead = render.Letterhead("overdue", school.name, school.district.name, name, address, diverted, code)
        letter = render.Letter(patron.name, patron.email, "", items, "<preview@localhost>", timezone.now())
        previews.append(Preview(code, str(language_name), patron.name, *render.render_full(letterhead, letter)))
    return previews


def log_notices(
    districts: QuerySet[District] | None,
    *,
    status: str = "",
    kind: str = "",
    school: School | None = None,
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[Notice]:
    """Notices of the districts (None: all), newest first, filtered; attempts prefetched in order."""
    notices = Notice.objects.all()
    if districts is not None:
        # The schools' ids as values rather than a join, so PostgreSQL plans a district's log on its schools' index
        # instead of walking the whole table's newest-first index.
        schools = School.objects.filter(district__in=districts).values_list("id", flat=True)
        notices = notices.filter(school_id__in=list(schools))
    if status:
        notices = notices.filter(status=status)
    if kind:
        notices = notices.filter(kind=kind)
    if school is not None:
        notices = notices.filter(school=school)
    # Bounds on created_at itself, not on its date: an index on created_at serves them, a date of it would not.
    if since:
        notices = notices.filter(created_at__gte=_start_of(since))
    if until:
        notices = notices.filter(created_at__lt=_start_of(until + timedelta(days=1)))
    attempts = Prefetch(
        "attempts_log", queryset=DeliveryAttempt.objects.select_related("smtp_settings").order_by("at", "id")
    )
    return notices.select_related("school__district").prefetch_related(attempts).order_by("-created_at", "-id")


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


# Counts stop here ("1000+"): an exact count reads every matching row, which for a million notices takes a
# PostgreSQL server a few hundred milliseconds, while counting up to this many reads at most this many index entries.
COUNT_UP_TO = 1_000


def status_counts(notices: QuerySet[Notice], *, status: str = "") -> dict[str, int]:
    """How many notices are in each status, by status value, in the order of NoticeStatus; each counted up to
    COUNT_UP_TO + 1 (more than COUNT_UP_TO shows as "COUNT_UP_TO+").

    With `status` (the list is filtered on it already) only that status is counted.
    """
    return {
        value: notices.filter(status=value).order_by()[: COUNT_UP_TO + 1].count() if status in ("", value) else 0
        for value in NoticeStatus.values
    }


@dataclass(frozen=True, slots=True)
class ConfigurationStatus:
    label: str
    row: SmtpSettings
    usage: cap.Usage
    not_before: datetime | None
    waiting: int

    @property
    def pause_title(self) -> str:
        advice = pause_advice(self.row)
        return str(advice.title) if advice else gettext("the mail server setup needs attention")


def configuration_statuses(installation: Installation, districts: QuerySet[District]) -> list[ConfigurationStatus]:
    """Each configuration the districts send through: cap use this hour, pause, back-off, queued notices."""
    rows: dict[int, tuple[SmtpSettings, list[District]]] = {}
    for status in district_statuses(installation, districts):
        if status.effective.settings is not None:
            rows.setdefault(status.effective.settings.pk, (status.effective.settings, []))[1].append(status.district)
    district_of = dict(School.objects.filter(district__in=districts).values_list("id", "district_id"))
    # Counted per school from the pending notices' own index alone (COUNT(*), no join): 50,000 waiting notices in
    # a few milliseconds.
    pending = Notice.objects.filter(status__in=[NoticeStatus.QUEUED, NoticeStatus.SENDING], school_id__in=district_of)
    waiting: Counter[int] = Counter()
    for school_id, count in pending.order_by().values_list("school_id").annotate(n=Count("*")):
        waiting[district_of[school_id]] += count
    statuses = []
    usages = cap.usages([row for row, _ in rows.values()])
    for row, served in rows.values():
        label = (
            gettext("Consortium mail server")
            if row.installation_id
            else gettext("%(district)s's mail server") % {"district": served[0].name}
        )
        state = getattr(row, "delivery_state", None)
        not_before = state.not_before if state and state.not_before and state.not_before > timezone.now() else None
        count = sum(waiting.get(district.pk, 0) for district in served)
        statuses.append(ConfigurationStatus(label, row, usages[row.pk], not_before, count))
    return statuses
