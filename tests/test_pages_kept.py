"""What pages keep between views (selectors.data_version) and that every committed write shows on the next view.

These tests commit (transaction=True): inside a test transaction nothing is kept at all.
"""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from settings_app import selectors, services
from settings_app.models import (
    CapReservation,
    DeliveryState,
    MailSource,
    Notice,
    NoticeKind,
    NoticeStatus,
    Role,
    RoleKind,
    SettingsChange,
    SmtpSettings,
)
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def nothing_kept_yet():
    """Each test starts with nothing kept, so only its own views are compared."""
    cache.clear()


def test_the_data_version_stays_while_nothing_is_committed_and_changes_with_each_commit(installation):
    before = selectors.data_version()
    assert before and selectors.data_version() == before

    factories.district("Changed")

    assert selectors.data_version() not in {"", before}


def test_nothing_is_kept_inside_a_transaction_or_without_a_version(installation):
    with transaction.atomic():
        assert selectors.data_version() == ""
    assert selectors.kept("", "key", lambda: "first") == "first"
    assert selectors.kept("", "key", lambda: "second") == "second"


@pytest.fixture
def district_page(client, installation, super_admin):
    """A district with its own settings, its page viewed once (kept) by the super administrator."""
    factories.smtp_settings(installation=installation, host="smtp.consortium.example.org")
    district = factories.district("Kept", mail_source=MailSource.OWN)
    factories.smtp_settings(district=district, host="smtp.kept.example.org", username="kept-user")
    client.force_login(super_admin)
    url = reverse("district_options", kwargs={"slug": district.slug})
    assert "smtp.kept.example.org" in client.get(url).content.decode()
    return district, url


def test_an_unchanged_page_is_shown_again_without_reading_its_parts(client, district_page):
    _, url = district_page
    with CaptureQueriesContext(connection) as queries:
        html = client.get(url).content.decode()
    read = [query["sql"] for query in queries.captured_queries if "pg_current_snapshot" not in query["sql"]]
    assert len(read) == 2, read  # the session and its user; PostgreSQL's data_version is a query too
    assert "smtp.kept.example.org" in html and "History" in html


def _saved_on_the_page(client, district, url, super_admin):
    client.post(
        url,
        {
            "mail_source": MailSource.OWN,
            "smtp-host": "smtp.saved.example.org",
            "smtp-port": "587",
            "smtp-transport": "tls",
            "smtp-max_per_hour": "50",
        },
    )


def _tested(client, district, url, super_admin):
    row = SmtpSettings.objects.get(district=district)
    SmtpSettings.objects.filter(pk=row.pk).update(
        last_test_ok=False, last_test_at=timezone.now(), last_test_by=super_admin
    )


def _paused_by_a_worker(client, district, url, super_admin):
    SmtpSettings.objects.filter(district=district).update(
        paused_at=timezone.now(), pause_category="auth", pause_detail="535 5.7.8 kept-check"
    )


def _switched_to_the_consortium(client, district, url, super_admin):
    services.district_set_mail_source(district=district, source=MailSource.CONSORTIUM, acting_user=super_admin)


def _audited(client, district, url, super_admin):
    SettingsChange.objects.create(district=district, changed_by=super_admin, summary={"Port": "2526"})


@pytest.mark.parametrize(
    ("write", "shown"),
    [
        (_saved_on_the_page, "smtp.saved.example.org"),
        (_tested, "it failed"),
        (_paused_by_a_worker, "535 5.7.8 kept-check"),
        (_switched_to_the_consortium, "This district is using the consortium server"),
        (_audited, "2526"),
    ],
)
def test_every_write_shows_on_the_next_view_of_the_settings_page(client, district_page, super_admin, write, shown):
    district, url = district_page
    assert shown not in client.get(url).content.decode()

    write(client, district, url, super_admin)

    assert shown in client.get(url).content.decode()


def test_resuming_a_paused_server_shows_on_the_next_view(client, district_page, super_admin):
    district, url = district_page
    _paused_by_a_worker(client, district, url, super_admin)
    assert "Sending is paused" in client.get(url).content.decode()

    SmtpSettings.objects.filter(district=district).update(paused_at=None, pause_category="", pause_detail="")

    assert "Sending is paused" not in client.get(url).content.decode()


def test_a_removed_role_takes_effect_on_the_next_view(client, district_page):
    district, url = district_page
    admin = factories.user("kept-admin")
    factories.role(admin, RoleKind.DISTRICT_ADMIN, district=district)
    client.force_login(admin)
    assert client.get(url).status_code == 200
    assert client.get(url).status_code == 200

    Role.objects.filter(user=admin).delete()

    assert client.get(url).status_code == 404


def test_the_district_list_follows_each_district(client, district_page):
    district, _ = district_page
    url = reverse("installation_options")
    assert "Own server (smtp.kept.example.org)" in client.get(url).content.decode()

    SmtpSettings.objects.filter(district=district).update(host="smtp.moved.example.org")

    assert "Own server (smtp.moved.example.org)" in client.get(url).content.decode()


def test_the_delivery_log_counts_and_lists_each_notice_as_it_changes(client, district_page, super_admin):
    district, _ = district_page
    school = factories.school(district)
    url = reverse("delivery_log")
    assert "Queued: <strong>0</strong>" in client.get(url).content.decode()

    notice = Notice.objects.create(
        kind=NoticeKind.OVERDUE, school=school, recipient_email="kept@example.org", message_id="<kept@example.org>"
    )
    html = client.get(url).content.decode()
    assert "Queued: <strong>1</strong>" in html and "kept@example.org" in html

    Notice.objects.filter(pk=notice.pk).update(status=NoticeStatus.SENT, sent_at=timezone.now())
    html = client.get(url).content.decode()
    assert "Queued: <strong>0</strong>" in html and "Sent: <strong>1</strong>" in html


@pytest.fixture
def log_of_a_sending_district(client, installation, super_admin):
    """A district sending through its own server, the log viewed once (kept) by the super administrator."""
    district = factories.district("Sending", mail_source=MailSource.OWN)
    row = factories.smtp_settings(district=district, host="smtp.sending.example.org", max_per_hour=40)
    client.force_login(super_admin)
    return row, reverse("delivery_log")


def _later(monkeypatch, minutes):
    moment = timezone.now() + timedelta(minutes=minutes)
    monkeypatch.setattr(timezone, "now", lambda: moment)


def test_the_use_of_the_hour_drops_on_the_next_view_when_a_reservation_leaves_the_window(
    client, monkeypatch, log_of_a_sending_district
):
    row, url = log_of_a_sending_district
    CapReservation.objects.create(smtp_settings=row, count=7, at=timezone.now() - timedelta(minutes=59))
    assert "7 of 40 sent this hour" in client.get(url).content.decode()
    assert "7 of 40 sent this hour" in client.get(url).content.decode()

    _later(monkeypatch, minutes=2)

    assert "0 of 40 sent this hour" in client.get(url).content.decode()


def test_the_end_of_a_back_off_shows_on_the_next_view(client, monkeypatch, log_of_a_sending_district):
    row, url = log_of_a_sending_district
    DeliveryState.objects.create(smtp_settings=row, not_before=timezone.now() + timedelta(minutes=1))
    assert "the server asked us to wait" in client.get(url).content.decode()

    _later(monkeypatch, minutes=2)

    assert "sending now" in client.get(url).content.decode()
