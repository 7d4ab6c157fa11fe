"""The staff pages and the delivery log: access by scope, what they say, what they write."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from settings_app.models import DeliveryAttempt, Loan, Notice, NoticeStatus, Patron
from tests import factories


@pytest.fixture
def school(north):
    return north.schools.get()


@pytest.fixture
def overdue_patrons(school):
    due = timezone.localdate() - dt.timedelta(days=4)
    patrons = []
    for name, email in [("Ana Lima", "ana@example.org"), ("Bo <b>Chen</b>", "bo@example.org")]:
        patron = Patron.objects.create(school=school, name=name, email=email)
        Loan.objects.create(patron=patron, title="Dune <script>", due_on=due)
        patrons.append(patron)
    return patrons


@pytest.fixture
def consortium(installation):
    return factories.smtp_settings(
        installation=installation, host="127.0.0.1", port=2525, from_name="Library", from_email="lib@example.org"
    )


def test_staff_see_that_email_is_not_set_up_and_who_can_set_it_up(client, north_staff, school, overdue_patrons):
    client.force_login(north_staff)
    response = client.get(reverse("school_notices", args=[school.slug]))
    assert response.status_code == 200
    assert b"Email is not set up for North" in response.content
    assert b"Send overdue notices</button>" not in response.content


def test_staff_send_overdue_notices_which_are_queued_in_the_same_transaction(
    client, north_staff, school, overdue_patrons, consortium, django_capture_on_commit_callbacks
):
    client.force_login(north_staff)
    page = client.get(reverse("school_notices", args=[school.slug]))
    assert b"2 patrons with 2 overdue items" in page.content
    assert b"Bo &lt;b&gt;Chen&lt;/b&gt;" in page.content and b"<b>Chen</b>" not in page.content
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("school_notices", args=[school.slug]),
            {"sender_name": "Ms Reed", "sender_email": "reed@example.org"},
        )
    assert response.status_code == 302
    notices = Notice.objects.filter(school=school)
    assert notices.count() == 2
    assert set(notices.values_list("sender_name", "sender_email")) == {("Ms Reed", "reed@example.org")}
    assert len({n.message_id for n in notices}) == 2
    assert callbacks, "delivery is enqueued on commit"


def test_a_sender_name_without_email_or_with_header_tricks_is_refused(
    client, north_staff, school, overdue_patrons, consortium
):
    client.force_login(north_staff)
    url = reverse("school_notices", args=[school.slug])
    lonely = client.post(url, {"sender_name": "Ms Reed"})
    injected = client.post(url, {"sender_name": "Ms Reed\r\nBcc: x@evil.example", "sender_email": "reed@example.org"})
    spoof = client.post(url, {"sender_name": "IT <boss@district.org>", "sender_email": "reed@example.org"})
    assert all(r.status_code == 200 for r in (lonely, injected, spoof))
    assert b"the two go together" in lonely.content
    assert Notice.objects.count() == 0


def test_paused_configuration_is_explained_and_notices_still_queue(
    client, north_staff, school, overdue_patrons, consortium
):
    consortium.paused_at = timezone.now()
    consortium.pause_category = "auth_failed"
    consortium.pause_detail = "535 5.7.8 refused by smtp.consortium-only.example.org"
    consortium.save()
    client.force_login(north_staff)
    page = client.get(reverse("school_notices", args=[school.slug])).content.decode()
    assert "Sending is paused: The user name or password was not accepted." in page
    assert "consortium-only" not in page  # the cause is for administrators; staff learn only that it waits
    client.post(reverse("school_notices", args=[school.slug]), {})
    assert Notice.objects.filter(status=NoticeStatus.QUEUED).count() == 2


def test_resource_list_is_queued_per_recipient_with_the_note_and_titles(client, north_staff, school, consortium):
    client.force_login(north_staff)
    response = client.post(
        reverse("resource_list", args=[school.slug]),
        {"recipients": "a@example.org\nb@example.org, a@example.org", "titles": "Dune\nEmma\n", "note": "Enjoy!"},
    )
    assert response.status_code == 302
    notices = Notice.objects.order_by("recipient_email")
    assert [n.recipient_email for n in notices] == ["a@example.org", "b@example.org"]
    assert notices[0].items == [{"title": "Dune"}, {"title": "Emma"}] and notices[0].note == "Enjoy!"


def test_staff_of_another_school_and_admins_of_another_district_get_404(
    client, north_staff, south_admin, south, school, consortium
):
    client.force_login(south_admin)
    assert client.get(reverse("school_notices", args=[school.slug])).status_code == 404
    assert client.get(reverse("district_delivery_log", args=["north"])).status_code == 404
    assert client.post(reverse("district_delivery_retry", args=["north"])).status_code == 404
    assert client.get(reverse("delivery_log")).status_code == 404
    client.force_login(north_staff)
    assert client.get(reverse("school_notices", args=[south.schools.get().slug])).status_code == 404
    assert client.get(reverse("district_delivery_log", args=["north"])).status_code == 404


def _notice(school, status, **fields):
    now = timezone.now()
    return Notice.objects.create(
        kind="overdue",
        school=school,
        recipient_email=f"{status}{Notice.objects.count()}@example.org",
        message_id=f"<{status}{Notice.objects.count()}@test>",
        status=status,
        created_at=now,
        **fields,
    )


def test_delivery_log_shows_counts_attempts_and_cap_use_newest_first(client, north_admin, school, consortium):
    sent = _notice(school, NoticeStatus.SENT, attempts=1)
    DeliveryAttempt.objects.create(notice=sent, outcome="sent", reply="250 2.0.0 Ok: queued as <ABC>")
    _notice(school, NoticeStatus.FAILED, last_category="recipient_rejected")
    client.force_login(north_admin)
    page = client.get(reverse("district_delivery_log", args=["north"]))
    body = page.content.decode()
    assert "Sent: <strong>1</strong>" in body and "Failed: <strong>1</strong>" in body
    assert "queued as &lt;ABC&gt;" in body
    assert "0 of 500 sent this hour" in body
    assert body.index("failed1@example.org") < body.index("sent0@example.org")
    filtered = client.get(reverse("district_delivery_log", args=["north"]), {"status": "failed"}).content.decode()
    assert "failed1@example.org" in filtered and "sent0@example.org" not in filtered


def test_retry_requeues_only_failed_notices_of_the_district_in_the_url(client, north_admin, school, south, consortium):
    mine = _notice(school, NoticeStatus.FAILED, failed_at=timezone.now())
    theirs = _notice(south.schools.get(), NoticeStatus.FAILED)
    client.force_login(north_admin)
    client.post(reverse("district_delivery_retry", args=["north"]), {"notice": [mine.pk, theirs.pk]})
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.status == NoticeStatus.QUEUED and mine.failed_at is None
    assert theirs.status == NoticeStatus.FAILED


def test_retry_is_post_only(client, super_admin):
    client.force_login(super_admin)
    assert client.get(reverse("delivery_retry")).status_code == 405


def test_the_super_administrator_sees_every_district_with_one_total(client, super_admin, school, south, consortium):
    _notice(school, NoticeStatus.SENT)
    _notice(south.schools.get(), NoticeStatus.FAILED)
    client.force_login(super_admin)
    body = client.get(reverse("delivery_log")).content.decode()
    assert "sent0@example.org" in body and "failed1@example.org" in body
    assert "Sent: <strong>1</strong>" in body and "Failed: <strong>1</strong>" in body
    assert "Consortium mail server" in body


def test_a_district_log_never_shows_what_the_consortium_server_said(
    client, north_admin, super_admin, school, consortium
):
    consortium.paused_at = timezone.now()
    consortium.pause_category = "cert_hostname"
    consortium.pause_detail = "The certificate is for mx.consortium-only.example.org"
    consortium.save()
    sent = _notice(school, NoticeStatus.SENT, attempts=1)
    DeliveryAttempt.objects.create(
        notice=sent,
        outcome="sent",
        smtp_settings=consortium,
        reply="250 2.0.0 queued on mx.consortium-only.example.org",
    )
    client.force_login(north_admin)
    page = client.get(reverse("district_delivery_log", args=["north"])).content.decode()
    assert "Paused" in page and "your Super Administrator can fix it" in page
    assert "consortium-only" not in page
    client.force_login(super_admin)
    assert "consortium-only" in client.get(reverse("delivery_log")).content.decode()


def test_counts_stop_at_a_bound_and_say_so_and_the_pages_cover_that_many_of_the_newest(
    client, super_admin, school, consortium, monkeypatch
):
    from settings_app.delivery import log

    monkeypatch.setattr(log, "COUNT_UP_TO", 2)
    sent = [_notice(school, NoticeStatus.SENT) for _ in range(4)]
    _notice(school, NoticeStatus.FAILED)
    client.force_login(super_admin)
    body = client.get(reverse("delivery_log")).content.decode()
    assert "Sent: <strong>2+</strong>" in body and "Failed: <strong>1</strong>" in body
    assert body.count('class="notice status-') == 4, "counted: 3 sent (2+) and 1 failed"
    assert sent[0].recipient_email not in body and sent[-1].recipient_email in body, "the newest come first"


def test_the_date_filters_take_whole_local_days(client, north_admin, school, consortium, settings):
    settings.TIME_ZONE = "America/Chicago"
    day = dt.date(2025, 3, 10)
    local = ZoneInfo("America/Chicago")
    inside = [dt.datetime(2025, 3, 10, 0, 5, tzinfo=local), dt.datetime(2025, 3, 10, 23, 55, tzinfo=local)]
    outside = [dt.datetime(2025, 3, 9, 23, 55, tzinfo=local), dt.datetime(2025, 3, 11, 0, 5, tzinfo=local)]
    for moment in [*inside, *outside]:
        notice = _notice(school, NoticeStatus.SENT)
        Notice.objects.filter(pk=notice.pk).update(created_at=moment)
    client.force_login(north_admin)
    url = reverse("district_delivery_log", args=["north"])
    body = client.get(url, {"since": day.isoformat(), "until": day.isoformat()}).content.decode()
    assert body.count('class="notice status-') == 2 and "Sent: <strong>2</strong>" in body
