"""Known providers fill the form; Auto-detect probes the usual ports at once and proposes the best."""

import time

import pytest
from django.urls import reverse

from settings_app.mail import detect, presets
from settings_app.mail.config import Transport
from settings_app.models import SmtpTestRecord

INLINE = {"HTTP_X_REQUESTED_WITH": "fetch"}


def test_every_preset_names_a_host_port_transport_and_caveat():
    assert {"gmail", "outlook", "microsoft365", "yahoo", "yahoo-plus", "icloud", "sendgrid", "ses"} <= set(
        presets.BY_KEY
    )
    for preset in presets.PRESETS:
        assert preset.host and preset.caveat
        assert preset.port in (465, 587)
        assert preset.transport in (Transport.SSL, Transport.TLS)


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("librarian@gmail.com", "smtp.gmail.com"),
        ("x@Hotmail.com", "smtp-mail.outlook.com"),
        ("a@icloud.com", "smtp.mail.me.com"),
    ],
)
def test_a_from_email_at_a_known_provider_finds_its_preset(address, host):
    assert presets.for_email(address).host == host


def test_an_unknown_domain_has_no_preset():
    assert presets.for_email("library@north.example.org") is None


async def test_detect_prefers_implicit_tls_and_reports_what_each_port_offers(
    monkeypatch, implicit_tls_server, starttls_server, plain_server
):
    monkeypatch.setattr(
        detect,
        "CANDIDATES",
        (
            (implicit_tls_server.port, Transport.SSL),
            (starttls_server.port, Transport.TLS),
            (plain_server.port, Transport.NONE),
        ),
    )
    found = await detect.detect(implicit_tls_server.config())

    assert [probe.diagnosis.ok for probe in found.probes] == [True, True, True]
    assert (found.best.port, found.best.best_transport) == (implicit_tls_server.port, Transport.SSL)
    assert found.probes[0].diagnosis.tls.issuer == "CN=Destiny Mail Test CA"
    assert set(found.probes[0].auth_mechanisms) == {"LOGIN", "PLAIN"}
    assert implicit_tls_server.recorded.sasl_commands == []  # probes never log in


async def test_a_plain_port_offering_starttls_is_proposed_as_tls(monkeypatch, starttls_server, silent_server):
    closed = silent_server.port + 1 if silent_server.port < 65535 else 1
    monkeypatch.setattr(
        detect, "CANDIDATES", ((closed, Transport.SSL), (closed, Transport.TLS), (starttls_server.port, Transport.NONE))
    )
    found = await detect.detect(starttls_server.config())

    assert found.best.port == starttls_server.port
    assert found.best.offers_starttls
    assert found.best.best_transport is Transport.TLS


async def test_detect_probes_at_the_same_time(monkeypatch, silent_server):
    """Three silent ports bounded at 1 s each answer in about 1 s together, not 3."""
    monkeypatch.setattr(detect, "CANDIDATES", tuple((silent_server.port, kind) for kind in Transport))
    started = time.monotonic()
    found = await detect.detect(silent_server.config(connect_timeout=0.5, total_timeout=1.0))
    assert time.monotonic() - started < 2.5
    assert found.best is None
    assert {probe.diagnosis.category for probe in found.probes} <= {
        "timeout",
        "protocol",
        "wrong_transport_starttls_on_ssl_port",
    }


@pytest.mark.django_db
def test_auto_detect_fills_the_best_port_and_transport_in_place(
    client, monkeypatch, consortium, super_admin, implicit_tls_server, starttls_server
):
    monkeypatch.setattr(
        detect, "CANDIDATES", ((starttls_server.port, Transport.TLS), (implicit_tls_server.port, Transport.SSL))
    )
    client.force_login(super_admin)
    html = client.post(reverse("installation_detect"), {"smtp-host": "LOCALHOST"}, **INLINE).content.decode()

    assert f'data-port="{starttls_server.port}"' in html
    assert 'data-transport="tls"' in html
    assert 'data-host="localhost"' in html
    record = SmtpTestRecord.objects.get()
    assert (record.kind, record.ok, record.user) == ("detect", True, super_admin)


@pytest.mark.django_db
def test_without_javascript_auto_detect_returns_the_page_with_the_form_filled(
    client, monkeypatch, consortium, super_admin, implicit_tls_server
):
    monkeypatch.setattr(detect, "CANDIDATES", ((implicit_tls_server.port, Transport.SSL),))
    client.force_login(super_admin)
    data = {
        "smtp-host": "localhost",
        "smtp-username": "library",
        "smtp-password": "typed-secret",
        "smtp-max_per_hour": "9",
    }
    html = client.post(reverse("installation_detect"), data).content.decode()

    assert f'name="smtp-port" value="{implicit_tls_server.port}"' in html
    assert '<option value="ssl" selected>' in html
    assert 'value="library"' in html and 'value="9"' in html
    assert "typed-secret" not in html


@pytest.mark.django_db
def test_auto_detect_needs_a_host_or_a_known_provider_email(client, consortium, super_admin):
    client.force_login(super_admin)
    response = client.post(
        reverse("installation_detect"), {"smtp-host": "", "smtp-from_email": "a@north.example.org"}, **INLINE
    )
    assert response.status_code == 400
    assert "Enter the server address" in response.content.decode()
    assert not SmtpTestRecord.objects.exists()


@pytest.mark.django_db
def test_auto_detect_refuses_a_host_the_form_would_refuse(client, consortium, super_admin):
    client.force_login(super_admin)
    response = client.post(reverse("installation_detect"), {"smtp-host": "smtp.example.org:25"}, **INLINE)
    assert response.status_code == 400
    assert "Port field" in response.content.decode()


@pytest.mark.django_db
def test_auto_detect_is_post_only_and_scoped(client, consortium, north, north_admin, south):
    client.force_login(north_admin)
    assert client.get(reverse("district_detect", kwargs={"slug": "north"})).status_code == 405
    assert client.post(reverse("district_detect", kwargs={"slug": "south"}), {"smtp-host": "x.org"}).status_code == 404
    assert client.post(reverse("installation_detect"), {"smtp-host": "x.org"}).status_code == 404


@pytest.mark.django_db
def test_a_preset_chosen_without_javascript_fills_the_server_fields_and_shows_its_caveat(
    client, consortium, super_admin
):
    client.force_login(super_admin)
    html = client.get(reverse("installation_options"), {"preset": "microsoft365"}).content.decode()
    assert 'value="smtp.office365.com"' in html
    assert 'name="smtp-port" value="587"' in html
    assert "SMTP AUTH must be enabled for the mailbox" in html
