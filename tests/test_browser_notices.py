"""Staff send overdue notices in a real Chromium, the real worker delivers them, the district admin sees them sent."""

import datetime as dt
import threading
from pathlib import Path

import pytest
from django.db import connections
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult
from playwright.sync_api import expect

from settings_app.mail.localserver import RecordingHandler, smtp_server
from settings_app.models import Loan, Notice, NoticeStatus, Patron
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.fixture
def mail_server():
    controller = smtp_server(RecordingHandler())
    yield controller
    controller.stop()


def run_worker() -> None:
    """django-tasks-db's worker (what `db_worker --batch` runs), in a thread of its own.

    Not in this thread: sync Playwright keeps an event loop running here, and delivery runs one of its own.
    Not through the command: it installs signal handlers, which only the main thread may do.
    """
    worker = Worker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="browser-test",
        excluded_queue_names=[],
    )

    def work() -> None:
        try:
            worker.run()
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the worker did not finish"


def test_staff_send_overdue_notices_as_themselves_and_the_admin_sees_them_sent(
    page, login, installation, north, north_staff, north_admin, mail_server
):
    factories.smtp_settings(
        installation=installation,
        host="127.0.0.1",
        port=mail_server.port,
        from_name="North Libraries",
        from_email="library@north.example.org",
    )
    due = timezone.localdate() - dt.timedelta(days=4)
    for name, email, title in [("Ana Lima", "ana@example.org", "Dune"), ("Bo Chen", "bo@example.org", "Emma")]:
        patron = Patron.objects.create(school=north.schools.get(), name=name, email=email)
        Loan.objects.create(patron=patron, title=title, due_on=due)

    login(north_staff)
    page.get_by_role("link", name="Notices: North High").click()
    expect(page.get_by_role("heading", name="Send overdue notices")).to_be_visible()
    expect(page.locator("#overdue-summary")).to_contain_text("2 patrons with 2 overdue items")
    page.get_by_label("Your display name").fill("Robin Reed")
    page.get_by_label("Your email").fill(north_staff.email)
    page.get_by_role("button", name="Send overdue notices").click()
    expect(page.get_by_text("2 overdue notices queued.")).to_be_visible()
    page.set_viewport_size({"width": 1200, "height": 1100})
    page.screenshot(path=SCREENSHOTS / "notices.png", full_page=True)

    run_worker()
    delivered = DBTaskResult.objects.filter(task_path="settings_app.tasks.deliver")
    assert set(delivered.values_list("status", flat=True)) == {TaskResultStatus.SUCCESSFUL}

    page.get_by_role("button", name="Log out").click()
    login(north_admin)
    page.get_by_role("link", name="Delivery log").click()
    rows = page.locator("#notice-log tr.notice")
    expect(rows).to_have_count(2)
    expect(rows.locator(".notice-status")).to_have_text(["Sent", "Sent"])
    page.screenshot(path=SCREENSHOTS / "delivery-log.png", full_page=True)

    sent = {n.message_id for n in Notice.objects.filter(status=NoticeStatus.SENT)}
    messages = mail_server.handler.messages
    assert {m.message["Message-ID"] for m in messages} == sent and len(sent) == 2
    for received in messages:
        message = received.message
        assert str(message["From"]) == str(message["Reply-To"]) == f"Robin Reed <{north_staff.email}>"
        assert received.mail_from == "library@north.example.org"  # the envelope stays the configuration's
