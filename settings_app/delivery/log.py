"""Reads for the notice pages and the delivery log."""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

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
    notices = Notice.objects.all() if districts is None else Notice.objects.filter(school__district__in=districts)
    if status:
        notices = notices.filter(status=status)
    if kind:
        notices = notices.filter(kind=kind)
    if school is not None:
        notices = notices.filter(school=school)
    if since:
        notices = notices.filter(created_at__date__gte=since)
    if until:
        notices = notices.filter(created_at__date__lte=until)
    attempts = Prefetch(
        "attempts_log", queryset=DeliveryAttempt.objects.select_related("smtp_settings").order_by("at", "id")
    )
    return notices.select_related("school__district").prefetch_related(attempts).order_by("-created_at", "-id")


def status_counts(notices: QuerySet[Notice]) -> dict[str, int]:
    """How many notices are in each status, by status value, in the order of NoticeStatus."""
    counted = Counter(dict(notices.order_by().values_list("status").annotate(n=Count("id"))))
    return {value: counted.get(value, 0) for value in NoticeStatus.values}


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
    pending = Notice.objects.filter(
        status__in=[NoticeStatus.QUEUED, NoticeStatus.SENDING], school__district__in=districts
    )
    waiting = dict(pending.order_by().values_list("school__district").annotate(n=Count("id")))
    statuses = []
    for row, served in rows.values():
        label = (
            gettext("Consortium mail server")
            if row.installation_id
            else gettext("%(district)s's mail server") % {"district": served[0].name}
        )
        state = getattr(row, "delivery_state", None)
        not_before = state.not_before if state and state.not_before and state.not_before > timezone.now() else None
        count = sum(waiting.get(district.pk, 0) for district in served)
        statuses.append(ConfigurationStatus(label, row, cap.usage(row), not_before, count))
    return statuses
