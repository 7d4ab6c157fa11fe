"""One broken server never delays the others: a worker's round sends to several configurations side by side, and a
configuration whose server is silent backs off (persisted, shown to the super administrator) instead of holding a
worker or being retried in a loop. Real servers on 127.0.0.1: aiosmtpd, and a socket that accepts and never writes.
"""

import datetime as dt
import socket
import threading

import pytest
from django.db import connections
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from settings_app import services
from settings_app.delivery import due, queue, rounds, worker
from settings_app.mail.localserver import RecordingHandler, smtp_server
from settings_app.models import DeliveryState, Loan, MailSource, Notice, NoticeStatus, Patron
from tests import factories

TODAY = dt.date(2025, 3, 10)
FAST_TIMEOUTS = override_settings(SMTP_CONNECT_TIMEOUT=1.0, SMTP_TOTAL_TIMEOUT=2.0)


class SilentServer:
    """Accepts connections on 127.0.0.1 and never writes; notes how many it accepted and when the last one ended."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.last_closed_at: dt.datetime | None = None
        self.first_closed_at: dt.datetime | None = None
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._hold, args=(client,), daemon=True).start()

    def _hold(self, client: socket.socket) -> None:
        with client:
            while client.recv(4096):
                pass
        self.last_closed_at = timezone.now()
        self.first_closed_at = self.first_closed_at or self.last_closed_at

    def stop(self) -> None:
        self.listener.close()


@pytest.fixture
def silent():
    server = SilentServer()
    yield server
    server.stop()


@pytest.fixture
def healthy():
    handler = RecordingHandler()
    controller = smtp_server(handler)
    yield controller, handler
    controller.stop()


def district_with_notice(installation, port: int, name: str, staff):
    district = factories.district(name, mail_source=MailSource.OWN)
    school = factories.school(district, f"{name} High")
    row = factories.smtp_settings(
        district=district, host="127.0.0.1", port=port, from_name=name, from_email=f"library@{name.lower()}.example.org"
    )
    patron = Patron.objects.create(school=school, name=f"{name} Patron", email=f"patron@{name.lower()}.example.org")
    Loan.objects.create(patron=patron, title="Dune", due_on=TODAY - dt.timedelta(days=3))
    queue.notices_queue_overdue(school=school, acting_user=staff, today=TODAY)
    return row


@FAST_TIMEOUTS
def test_a_silent_server_holds_one_slot_while_every_healthy_configuration_is_served(
    installation, silent, healthy, north_staff
):
    controller, handler = healthy
    stuck = district_with_notice(installation, silent.port, "Stuck", north_staff)
    fine = [district_with_notice(installation, controller.port, f"Fine{i}", north_staff) for i in range(3)]

    done = rounds.deliver_round(stuck.pk, concurrency=4)

    assert done.ran[0] == stuck.pk and set(done.ran) == {stuck.pk, *(row.pk for row in fine)} and not done.errors
    sent = Notice.objects.filter(status=NoticeStatus.SENT)
    assert sent.count() == 3 and len(handler.messages) == 3
    assert silent.last_closed_at is not None
    last_sent = sent.order_by("-sent_at").values_list("sent_at", flat=True).first()
    assert last_sent is not None and last_sent < silent.last_closed_at, "the healthy waited for the silent"
    state = DeliveryState.objects.get(smtp_settings=stuck)
    assert state.backing_off_until is not None and state.busy_streak == 1 and state.busy_category == "timeout"
    assert done.again == {stuck.pk: state.not_before}
    waiting = Notice.objects.get(school__district=stuck.district)
    assert waiting.status == NoticeStatus.QUEUED and waiting.next_attempt_at == state.not_before, "a notice was lost"


@FAST_TIMEOUTS
def test_a_configuration_backing_off_is_left_out_of_later_rounds_and_the_sweep(
    installation, silent, healthy, north_staff
):
    controller, _ = healthy
    stuck = district_with_notice(installation, silent.port, "Stuck", north_staff)
    rounds.deliver_round(stuck.pk)
    accepted = silent.accepted
    fine = district_with_notice(installation, controller.port, "Fine", north_staff)

    assert due.configurations() == [fine.pk]
    done = rounds.deliver_round(fine.pk)
    assert done.ran == [fine.pk] and silent.accepted == accepted, "the silent server was tried again at once"
    assert worker.deliver(stuck.pk) == DeliveryState.objects.get(smtp_settings=stuck).not_before
    assert silent.accepted == accepted


def test_a_configuration_at_its_hourly_cap_is_left_out_of_rounds_until_a_slot_frees(installation, healthy, north_staff):
    controller, handler = healthy
    row = district_with_notice(installation, controller.port, "Capped", north_staff)
    row.max_per_hour = 1
    row.save()
    school = row.district.schools.get()
    patron = Patron.objects.create(school=school, name="Second", email="second@capped.example.org")
    Loan.objects.create(patron=patron, title="Emma", due_on=TODAY - dt.timedelta(days=3))
    queue.notices_queue_overdue(school=school, acting_user=north_staff, today=TODAY)

    done = rounds.deliver_round(row.pk)

    assert len(handler.messages) == 1 and Notice.objects.filter(status=NoticeStatus.QUEUED).count() == 1
    state = DeliveryState.objects.get(smtp_settings=row)
    assert state.cap_full_until is not None and done.again == {row.pk: state.cap_full_until}
    assert due.configurations() == []

    # The administrator raises the maximum: the notice that waited is due again now, not at the old free slot.
    values = {field: getattr(row, field) for field in services.SETTINGS_FIELDS} | {"max_per_hour": 100}
    services.smtp_settings_save(scope=row.district, values=values, password="", acting_user=north_staff)
    assert due.configurations() == [row.pk]
    rounds.deliver_round(row.pk)
    assert len(handler.messages) == 2


def test_only_one_worker_at_a_time_opens_a_session_to_a_configurations_server(installation, north):
    row = factories.smtp_settings(installation=installation)
    turn = worker.take_opening_turn(row.pk)
    assert turn is not None and worker.take_opening_turn(row.pk) is None
    worker.end_opening_turn(row.pk, turn)
    assert worker.take_opening_turn(row.pk) is not None
    DeliveryState.objects.update(opening_until=timezone.now() - dt.timedelta(seconds=1))
    assert worker.take_opening_turn(row.pk) is not None, "a dead worker's turn must end by itself"


@FAST_TIMEOUTS
def test_the_district_list_shows_a_configuration_backing_off_with_its_cause(
    client, installation, super_admin, silent, north_staff
):
    stuck = district_with_notice(installation, silent.port, "Stuck", north_staff)
    rounds.deliver_round(stuck.pk)
    state = DeliveryState.objects.get(smtp_settings=stuck)
    client.force_login(super_admin)
    page = client.get(reverse("installation_options")).content.decode()
    local = timezone.localtime(state.not_before)
    assert f"Backing off until {local:%H:%M:%S}" in page
    assert f"Backing off until {local:%H:%M:%S}: The server did not answer in time" in page
    page = client.get(reverse("installation_options"), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert f"En espera hasta las {local:%H:%M:%S}: El servidor no respondió a tiempo" in page  # worded when shown


@pytest.mark.django_db(transaction=True)
@override_settings(SMTP_CONNECT_TIMEOUT=3.0, SMTP_TOTAL_TIMEOUT=4.0)
def test_a_notice_queued_while_a_round_waits_on_a_silent_server_goes_out_without_waiting_for_it(
    installation, silent, healthy, north_staff
):
    controller, handler = healthy
    stuck = district_with_notice(installation, silent.port, "Stuck", north_staff)
    fine_school = factories.school(factories.district("Fine", mail_source=MailSource.OWN), "Fine High")
    factories.smtp_settings(
        district=fine_school.district, host="127.0.0.1", port=controller.port, from_email="library@fine.example.org"
    )
    patron = Patron.objects.create(school=fine_school, name="Late Patron", email="late@fine.example.org")
    Loan.objects.create(patron=patron, title="Dune", due_on=TODAY - dt.timedelta(days=3))

    def queue_late() -> None:
        try:
            queue.notices_queue_overdue(school=fine_school, acting_user=north_staff, today=TODAY)
        finally:
            connections.close_all()

    staff_action = threading.Timer(0.3, queue_late)
    staff_action.start()
    rounds.deliver_round(stuck.pk)
    staff_action.join()

    late = Notice.objects.get(school=fine_school)
    assert late.status == NoticeStatus.SENT and len(handler.messages) == 1
    assert silent.first_closed_at is not None and late.sent_at is not None
    assert late.sent_at < silent.first_closed_at, "the late notice waited for the silent server"


@pytest.mark.django_db(transaction=True)
@override_settings(SMTP_CONNECT_TIMEOUT=3.0, SMTP_TOTAL_TIMEOUT=4.0)
def test_a_configuration_that_already_ran_in_a_round_runs_again_when_more_is_queued(
    installation, silent, healthy, north_staff
):
    controller, handler = healthy
    stuck = district_with_notice(installation, silent.port, "Stuck", north_staff)
    fine = district_with_notice(installation, controller.port, "Fine", north_staff)
    school = fine.district.schools.get()
    patron = Patron.objects.create(school=school, name="Later Patron", email="later@fine.example.org")
    Loan.objects.create(patron=patron, title="Emma", due_on=TODAY - dt.timedelta(days=3))

    def queue_more() -> None:
        try:
            queue.notices_queue_overdue(school=school, acting_user=north_staff, today=TODAY)
        finally:
            connections.close_all()

    staff_action = threading.Timer(1.0, queue_more)
    staff_action.start()
    done = rounds.deliver_round(stuck.pk)
    staff_action.join()

    later = Notice.objects.get(recipient_email="later@fine.example.org")
    assert done.ran.count(fine.pk) == 2 and len(handler.messages) == 3  # both patrons are still overdue
    assert silent.first_closed_at is not None and later.sent_at is not None
    assert later.sent_at < silent.first_closed_at, "the second notice waited for the round to end"
