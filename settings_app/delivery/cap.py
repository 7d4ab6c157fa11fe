"""The maximum emails per hour of an SMTP configuration, held in any rolling window across all workers.

Every send takes slots from a ledger (CapReservation) while the configuration's DeliveryState row is locked, so
concurrent workers (and Test email) reserve one after another. A reservation is dated when its last message may
go out: a batch holds its slots until the end of its lease and is re-dated to its real end when it settles, so
no two messages counted in different windows are ever less than a window apart at the server.
Districts that use the consortium server send through the consortium's row, so they share its cap.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from settings_app.models import CapReservation, DeliveryState, SmtpSettings


def window() -> timedelta:
    """The length of the rolling window (an hour; shorter in tests)."""
    return timedelta(seconds=settings.DELIVERY_CAP_WINDOW)


@dataclass(frozen=True, slots=True)
class Grant:
    reservation_id: int | None
    count: int
    next_free_at: datetime | None  # when another slot frees, if fewer than wanted were granted


def lock_state(settings_id: int) -> DeliveryState:
    """The configuration's delivery state, locked until the surrounding transaction ends."""
    DeliveryState.objects.get_or_create(smtp_settings_id=settings_id)
    return DeliveryState.objects.select_for_update().get(smtp_settings_id=settings_id)


def _next_free_at(ledger: list[tuple[datetime, int]], used: int, cap: int, count: int) -> datetime:
    freed = 0
    for at, slots in ledger:
        freed += slots
        if used - freed + count <= cap:
            return at + window()
    return timezone.now() + window()


def reserve(settings_id: int, *, wanted: int, hold: timedelta, partial: bool = True) -> Grant:
    """Take up to `wanted` slots (all or none unless `partial`), held for `hold` from now."""
    with transaction.atomic():
        lock_state(settings_id)
        cap = SmtpSettings.objects.values_list("max_per_hour", flat=True).get(pk=settings_id)
        now = timezone.now()
        rows = CapReservation.objects.filter(smtp_settings_id=settings_id)
        rows.filter(at__lte=now - window()).delete()
        ledger = list(rows.order_by("at").values_list("at", "count"))
        used = sum(slots for _, slots in ledger)
        granted = min(wanted, max(cap - used, 0))
        if granted < wanted and not partial:
            granted = 0
        reservation_id = None
        if granted:
            reservation = CapReservation.objects.create(smtp_settings_id=settings_id, count=granted, at=now + hold)
            reservation_id = reservation.pk
        next_free = None if granted == wanted else _next_free_at(ledger, used + granted, cap, 1 if partial else wanted)
        return Grant(reservation_id, granted, next_free)


def shrink(grant: Grant, count: int) -> Grant:
    """Hold only `count` of a reservation's slots (a batch found fewer notices than it reserved for)."""
    if grant.reservation_id is None or count >= grant.count:
        return grant
    CapReservation.objects.filter(pk=grant.reservation_id).update(count=count)
    return Grant(grant.reservation_id, count, grant.next_free_at)


def settle(grant: Grant, *, used: int) -> None:
    """Shrink a reservation to the slots really used, dated now (every one of them has gone out by now)."""
    if grant.reservation_id is None:
        return
    if used:
        CapReservation.objects.filter(pk=grant.reservation_id).update(count=used, at=timezone.now())
    else:
        CapReservation.objects.filter(pk=grant.reservation_id).delete()


def try_reserve(settings_id: int, *, count: int = 1) -> datetime | None:
    """Reserve `count` slots for an immediate send such as Test email.

    Returns None when reserved (held for the SMTP session's total timeout), else when the next slot frees.
    """
    hold = timedelta(seconds=settings.SMTP_TOTAL_TIMEOUT)
    grant = reserve(settings_id, wanted=count, hold=hold, partial=False)
    return None if grant.count else grant.next_free_at


@dataclass(frozen=True, slots=True)
class Usage:
    used: int
    cap: int
    next_free_at: datetime | None  # None while slots are free

    @property
    def remaining(self) -> int:
        return max(self.cap - self.used, 0)


def usages(rows: Sequence[SmtpSettings]) -> dict[int, Usage]:
    """usage() of many configurations: one query, plus one for each configuration at its cap (the delivery log of
    500 configurations read them one by one: 500 queries, ~25 ms of database time before any notice was read)."""
    since = timezone.now() - window()
    counted = CapReservation.objects.filter(smtp_settings__in=rows, at__gt=since).order_by()
    used = dict(counted.values_list("smtp_settings").annotate(total=Sum("count")))
    return {
        row.pk: usage(row)
        if used.get(row.pk, 0) >= row.max_per_hour
        else Usage(used.get(row.pk, 0), row.max_per_hour, None)
        for row in rows
    }


def usage(row: SmtpSettings) -> Usage:
    """How much of the configuration's cap the current window has used, for the delivery log."""
    now = timezone.now()
    rows = CapReservation.objects.filter(smtp_settings=row, at__gt=now - window())
    used = rows.aggregate(total=Sum("count"))["total"] or 0
    next_free = None
    if used >= row.max_per_hour:
        ledger = list(rows.order_by("at").values_list("at", "count"))
        next_free = _next_free_at(ledger, used, row.max_per_hour, 1)
    return Usage(used, row.max_per_hour, next_free)
