"""The delivery log: every notice of a district (the super administrator: all), its attempts, retry."""

import functools
from datetime import datetime

from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from settings_app import permissions, selectors
from settings_app.delivery import log, queue
from settings_app.delivery.forms import LogFilterForm
from settings_app.models import District, Installation, NoticeStatus, School
from settings_app.permissions import AuthenticatedRequest

PAGE_SIZE = 50


def _districts(request: AuthenticatedRequest, slug: str | None) -> tuple[Installation, District | None]:
    """The installation and the district in view: one from the URL (404 unless administered), or all (None) for
    the super administrator."""
    if slug is None:
        return permissions.get_installation_for_user(request.user), None
    district = permissions.get_district_for_user(request.user, slug)
    return district.installation, district


def _in_view(district: District | None) -> QuerySet[District] | None:
    return None if district is None else District.objects.filter(pk=district.pk)


def _log_url(district: District | None) -> str:
    return reverse("district_delivery_log", args=[district.slug]) if district else reverse("delivery_log")


def _changes_at(statuses: list[log.ConfigurationStatus], since: datetime) -> datetime | None:
    """When the configurations' state changes with time alone: a back-off ends, a reservation leaves the window."""
    moments = [status.not_before for status in statuses if status.not_before]
    if leaves := selectors.cap_window_changes_at([status.row.pk for status in statuses], since):
        moments.append(leaves)
    return min(moments, default=None)


def delivery_log(request: AuthenticatedRequest, slug: str | None = None) -> HttpResponse:
    """The configurations' state and the notices, their counts and page, all kept while the database holds the same
    data (selectors.data_version); the configurations' state only until it changes with time. The notices are read
    only when their part of the page is rendered anew."""
    installation, district = _districts(request, slug)
    version = permissions.request_version(request.user)

    @functools.cache
    def notices() -> tuple[LogFilterForm, Page, dict[str, int]]:
        schools = School.objects.all() if district is None else School.objects.filter(district=district)
        filters = LogFilterForm(request.GET or None, schools=schools)
        chosen = filters.cleaned_data if filters.is_valid() else {}
        found = log.log_notices(_in_view(district), **{key: value for key, value in chosen.items() if value})
        counts = log.status_counts(found)
        paginator = Paginator(found, PAGE_SIZE)
        paginator.count = sum(counts.values())  # one aggregate serves both the counts and the pages
        return filters, paginator.get_page(request.GET.get("page")), counts

    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "version": version,
        "keep": selectors.KEEP_SECONDS if version else 0,
        "district": district,
        "filters": lambda: notices()[0],
        "page": lambda: notices()[1],
        "counts": lambda: notices()[2],
        "statuses": NoticeStatus.choices,
        "query": query.urlencode(),
        # A district sees that the consortium server failed, never what it said: that may name the server.
        "consortium_private": district is not None and not permissions.is_super_admin(request.user),
        "configurations": selectors.kept(
            version,
            f"configurations:{slug or ''}:{translation.get_language()}",  # their labels are in the reader's language
            lambda: log.configuration_statuses(installation, _in_view(district) or District.objects.all()),
            until=_changes_at,
        ),
        "retry_url": reverse("district_delivery_retry", args=[slug]) if slug else reverse("delivery_retry"),
    }
    return render(request, "notices/delivery_log.html", context)


@require_POST
def delivery_retry(request: AuthenticatedRequest, slug: str | None = None) -> HttpResponse:
    """Queue failed notices again: the ones ticked, within the districts in view (others are ignored)."""
    _, district = _districts(request, slug)
    ids = [value for value in request.POST.getlist("notice") if value.isdigit()]
    chosen = log.log_notices(_in_view(district)).filter(pk__in=ids)
    count = queue.notices_retry(notices=chosen, acting_user=request.user)
    messages.success(
        request,
        ngettext("%(count)d failed notice queued again.", "%(count)d failed notices queued again.", count)
        % {"count": count},
    )
    return redirect(_log_url(district))
