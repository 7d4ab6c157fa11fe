"""The delivery log: every notice of a district (the super administrator: all), its attempts, retry."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from settings_app import permissions
from settings_app.delivery import log, queue
from settings_app.delivery.forms import LogFilterForm
from settings_app.models import District, School
from settings_app.permissions import AuthenticatedRequest

PAGE_SIZE = 50


def _districts(request: AuthenticatedRequest, slug: str | None) -> tuple[QuerySet[District], District | None]:
    """The districts in view: one from the URL (404 unless administered), or all for the super administrator."""
    if slug is None:
        permissions.get_installation_for_user(request.user)
        return District.objects.all(), None
    district = permissions.get_district_for_user(request.user, slug)
    return District.objects.filter(pk=district.pk), district


def _log_url(district: District | None) -> str:
    return reverse("district_delivery_log", args=[district.slug]) if district else reverse("delivery_log")


def delivery_log(request: AuthenticatedRequest, slug: str | None = None) -> HttpResponse:
    districts, district = _districts(request, slug)
    filters = LogFilterForm(request.GET or None, schools=School.objects.filter(district__in=districts))
    chosen = filters.cleaned_data if filters.is_valid() else {}
    notices = log.log_notices(districts, **{key: value for key, value in chosen.items() if value})
    page = Paginator(notices, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "district": district,
        "filters": filters,
        "page": page,
        "query": query.urlencode(),
        "counts": log.status_counts(notices),
        "configurations": log.configuration_statuses(districts),
        "retry_url": reverse("district_delivery_retry", args=[slug]) if slug else reverse("delivery_retry"),
    }
    return render(request, "notices/delivery_log.html", context)


@require_POST
def delivery_retry(request: AuthenticatedRequest, slug: str | None = None) -> HttpResponse:
    """Queue failed notices again: the ones ticked, within the districts in view (others are ignored)."""
    districts, district = _districts(request, slug)
    ids = [value for value in request.POST.getlist("notice") if value.isdigit()]
    chosen = log.log_notices(districts).filter(pk__in=ids)
    count = queue.notices_retry(notices=chosen, acting_user=request.user)
    messages.success(request, f"{count} failed notice(s) queued again.")
    return redirect(_log_url(district))
