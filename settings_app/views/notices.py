"""Library staff pages: Send overdue notices, Email a Resource List. The school comes from the URL only."""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext, ngettext

from settings_app import permissions
from settings_app.delivery import log, queue
from settings_app.delivery.forms import ResourceListForm, SenderForm
from settings_app.models import School
from settings_app.permissions import AuthenticatedRequest
from settings_app.selectors import Effective, effective_settings


def _form_data(request: AuthenticatedRequest, status: Effective) -> dict | None:
    return request.POST if request.method == "POST" and status.configured else None


def _queued_message(request: AuthenticatedRequest, status: Effective, text: str) -> None:
    if status.paused:
        text += " " + gettext("Sending is paused for now; they wait in the queue and go out once it resumes.")
    messages.success(request, text)


def school_notices(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    """How many patrons have overdue items, a preview of one notice, and Send."""
    school = permissions.get_school_for_user(request.user, slug)
    status = effective_settings(school.district)
    form = SenderForm(_form_data(request, status), default_sender=log.default_sender_label(status.settings))
    if form.is_bound and form.is_valid():
        queued = queue.notices_queue_overdue(school=school, acting_user=request.user, **form.cleaned_data)
        count = queued.queued
        text = ngettext("%(count)d overdue notice queued.", "%(count)d overdue notices queued.", count) % {
            "count": count
        }
        if waiting := queued.already_waiting:
            text += " " + ngettext(
                "%(count)d patron already had a notice waiting and was skipped.",
                "%(count)d patrons already had a notice waiting and were skipped.",
                waiting,
            ) % {"count": waiting}
        _queued_message(request, status, text)
        return redirect("school_notices", slug=school.slug)
    context = {**_page(request, school, status), "form": form, "summary": log.overdue_summary(school)}
    context["previews"] = log.overdue_previews(school, status.settings) if status.configured else []
    return render(request, "notices/school_notices.html", context)


def resource_list(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    """Email a Resource List: recipients, a note and the titles."""
    school = permissions.get_school_for_user(request.user, slug)
    status = effective_settings(school.district)
    form = ResourceListForm(_form_data(request, status), default_sender=log.default_sender_label(status.settings))
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        queued = queue.notices_queue_resource_list(school=school, acting_user=request.user, **data)
        text = ngettext(
            "The Resource List was queued for %(count)d recipient.",
            "The Resource List was queued for %(count)d recipients.",
            queued.queued,
        ) % {"count": queued.queued}
        _queued_message(request, status, text)
        return redirect("resource_list", slug=school.slug)
    return render(request, "notices/resource_list.html", {**_page(request, school, status), "form": form})


def _page(request: AuthenticatedRequest, school: School, status: Effective) -> dict:
    administers = permissions.administered_districts(request.user).filter(pk=school.district_id).exists()
    return {"school": school, "status": status, "can_set_up": administers, "can_see_log": administers}
