"""Languages: the Spanish catalogue is complete, people choose their language, and each patron's notice is written in
the patron's own language, whatever the staff member's."""

import contextlib
import datetime as dt
import email
import email.policy
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from email.header import decode_header, make_header
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import ManagementUtility, call_command
from django.test import Client
from django.urls import reverse
from django.utils import translation

from settings_app.delivery import queue, worker
from settings_app.delivery.circulation import seed_circulation_demo
from settings_app.mail.localserver import RecordingHandler, smtp_server
from settings_app.models import Loan, MailSource, Notice, Patron
from settings_app.selectors import scope_settings
from tests import factories
from tests.smtp_servers import PASSWORD, USERNAME

ROOT = Path(__file__).resolve().parent.parent
TRANSLATED = [code for code, _ in settings.LANGUAGES if code != "en"]  # English is the language of the msgids
TODAY = dt.date(2025, 3, 10)
SPANISH = {"HTTP_ACCEPT_LANGUAGE": "es"}

# Words of the English interface that no Spanish page may still show (product names and protocol words such as
# SMTP, TLS, STARTTLS, EHLO, AUTH, Gmail are the same in both languages and are not listed).
ENGLISH_WORDS = re.compile(
    r"\b(the|and|with|your|you|this|that|which|Save|Setup|Settings|Server|Password|Send|Sent|Delivery|Notices?|"
    r"Options|District|School|Patrons?|Overdue|Status|Queued|Failed|Working|Paused|Not set up|Not tested|Log out|"
    r"Log in|Username|History|Email|Test email|Test Server|Known provider|Auto-detect|Fill in|Filter|Retry|Attempts|"
    r"Preview|Subject|Skip to content|Language|English)\b"
)


def catalogue(language: str) -> Path:
    return Path(f"settings_app/locale/{language}/LC_MESSAGES/django.po")


# The command that refreshes the catalogues after code changes (README: Languages), without its --locale options.
MAKEMESSAGES = [
    "makemessages",
    "--no-obsolete",
    "--ignore=tests/*",
    "--ignore=bench/*",
    "--ignore=var/*",
    "--add-location=file",
]


def scratch_catalogues(tmp_path: Path) -> Path:
    """makemessages run on a copy of the project (never on the repository), over copies of the catalogues."""
    for name in ("manage.py", "destiny_mail", "settings_app", "templates"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
        else:
            shutil.copy(source, tmp_path / name)
    environment = {
        **os.environ,
        "SECRET_KEY": "scratch-" * 8,
        "SMTP_ENCRYPTION_KEYS": "Mz0S3K6yFpy3QzX4w9s7b3a8oWgYk1yqQ2v6c5n1v0E=",
        "DATABASE_URL": "sqlite:///:memory:",
    }
    subprocess.run(
        [sys.executable, "manage.py", *MAKEMESSAGES, *(f"--locale={language}" for language in TRANSLATED)],
        cwd=tmp_path,
        env=environment,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return tmp_path


def msgids(output: str) -> list[str]:
    """The msgids of what msgattrib printed, header left out."""
    found = []
    for block in output.split("\n\n"):
        match = re.search(r'^msgid ((?:".*"\n?)+)', block, re.MULTILINE)
        text = "".join(re.findall(r'"(.*)"', match.group(1))) if match else ""
        if text:
            found.append(text)
    return found


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_of_the_code_and_templates_is_translated_in_each_catalogue(tmp_path, language):
    refreshed = scratch_catalogues(tmp_path) / catalogue(language)

    def listed(*options: str) -> list[str]:
        run = subprocess.run(
            ["msgattrib", *options, "--no-obsolete", str(refreshed)], capture_output=True, text=True, check=True
        )
        return msgids(run.stdout)

    untranslated, fuzzy = listed("--untranslated"), listed("--only-fuzzy")
    where = catalogue(language)
    assert not untranslated, f"Missing or untranslated in {where} (README: Languages):\n" + "\n".join(untranslated)
    assert not fuzzy, f"Fuzzy in {where}:\n" + "\n".join(fuzzy)
    check = subprocess.run(["msgfmt", "--check", "-o", os.devnull, str(refreshed)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr  # the placeholders of each translation match its msgid


class VisibleText(HTMLParser):
    """The Spanish text a person sees or hears: text outside script/style, plus labels read out (aria-label, alt,
    title, placeholder). Elements marked in another language (lang="en": the switch back to English) are left out."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("script", "style") or values.get("lang", "es") != "es":
            self._hidden.append(tag)
        elif not self._hidden:
            self.parts += [
                values[name] or "" for name in ("aria-label", "alt", "title", "placeholder") if values.get(name)
            ]

    def handle_endtag(self, tag: str) -> None:
        if self._hidden and self._hidden[-1] == tag:
            self._hidden.pop()

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def english_left(html: str, *allowed: str) -> list[str]:
    parser = VisibleText()
    parser.feed(html)
    text = " ".join(parser.parts)
    for name in allowed:  # names in the data (schools, districts, people) are not interface words
        text = text.replace(name, " ")
    return sorted(set(ENGLISH_WORDS.findall(text)))


@pytest.fixture
def district_with_server(installation, north):
    factories.smtp_settings(installation=installation, host="smtp.consortium.example.org")
    north.mail_source = MailSource.CONSORTIUM
    north.save()
    return north


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "url"),
    [
        ("super_admin", reverse("installation_options")),
        ("super_admin", reverse("setup")),
        ("super_admin", reverse("delivery_log")),
        ("north_admin", reverse("district_options", kwargs={"slug": "north"})),
        ("north_staff", reverse("school_notices", kwargs={"slug": "north-high"})),
        ("north_staff", reverse("resource_list", kwargs={"slug": "north-high"})),
    ],
)
def test_a_spanish_speaker_meets_no_english_word_on_the_pages(client, request, district_with_server, who, url):
    school = district_with_server.schools.get()
    overdue(school, "Ana Lima", "ana@example.org", "es", "Dune")
    client.force_login(request.getfixturevalue(who))

    response = client.get(url, **SPANISH)

    html = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="es">' in html
    assert english_left(html, "Test Consortium", "North High", "North", "Ana Lima", "Dune") == []


@pytest.mark.django_db
def test_the_login_page_follows_the_browser_language_before_anyone_logs_in(client):
    html = client.get(reverse("login"), **SPANISH).content.decode()
    assert '<html lang="es">' in html and "Iniciar sesión" in html and "Nombre de usuario" in html
    assert english_left(html) == []


@pytest.mark.django_db
def test_accept_language_picks_the_language_and_english_is_the_default(client, super_admin):
    client.force_login(super_admin)
    url = reverse("installation_options")
    assert '<html lang="en">' in client.get(url).content.decode()
    assert '<html lang="en">' in client.get(url, HTTP_ACCEPT_LANGUAGE="fr, de").content.decode()
    spanish = client.get(url, HTTP_ACCEPT_LANGUAGE="es-MX,es;q=0.9,en;q=0.5").content.decode()
    assert '<html lang="es">' in spanish and "Configuración SMTP" in spanish


@pytest.mark.django_db
def test_the_language_switch_is_remembered_over_the_browsers_language(client, super_admin):
    client.force_login(super_admin)
    url = reverse("installation_options")
    switch = client.get(url).content.decode()
    assert f'action="{reverse("set_language")}"' in switch and 'name="language" value="es" lang="es"' in switch

    response = client.post(reverse("set_language"), {"language": "es", "next": url})

    assert response.status_code == 302 and response.url == url
    cookie = client.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "es" and cookie["httponly"] and cookie["samesite"] == "Lax"
    html = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="es">' in html and "Guardar" in html
    assert 'name="language" value="en" lang="en">English<' in html  # the way back, in its own language
    client.post(reverse("set_language"), {"language": "en", "next": url})
    assert '<html lang="en">' in client.get(url, **SPANISH).content.decode()


@pytest.mark.django_db
def test_the_language_switch_needs_the_csrf_token():
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("set_language"), {"language": "es", "next": "/"})
    assert response.status_code == 403 and settings.LANGUAGE_COOKIE_NAME not in response.cookies


@pytest.mark.django_db
def test_the_language_switch_takes_post_only_and_never_an_outside_address(client):
    assert client.get(reverse("set_language") + "?language=es").cookies.get(settings.LANGUAGE_COOKIE_NAME) is None
    response = client.post(reverse("set_language"), {"language": "es", "next": "https://evil.example.org/"})
    assert response.status_code == 302 and not response.url.startswith("https://evil")


@pytest.mark.django_db(transaction=True)
def test_pages_kept_between_views_are_kept_per_language(client, installation, super_admin):
    """A page part kept for an English reader is never shown to a Spanish one (and the other way round)."""
    factories.smtp_settings(installation=installation, host="smtp.consortium.example.org")
    client.force_login(super_admin)
    url = reverse("installation_options")
    for _ in range(2):
        assert "SMTP settings" in client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
        spanish = client.get(url, **SPANISH).content.decode()
        assert "Configuración SMTP" in spanish and "SMTP settings" not in spanish


@pytest.mark.django_db
def test_form_errors_and_messages_are_in_the_readers_language(client, super_admin):
    client.force_login(super_admin)
    data = {"smtp-host": "smtp.example.org:587", "smtp-transport": "tls", "smtp-max_per_hour": "100"}
    html = client.post(reverse("installation_options"), data, **SPANISH).content.decode()
    assert "Escriba el puerto en el campo Puerto, no después del nombre del servidor." in html
    data["smtp-host"] = "smtp.example.org"
    response = client.post(reverse("installation_options"), data, follow=True, **SPANISH)
    assert "Configuración SMTP guardada." in response.content.decode()


def overdue(school, name, email_address, language, *titles):
    patron = Patron.objects.create(school=school, name=name, email=email_address, language=language)
    for title in titles:
        Loan.objects.create(patron=patron, title=title, due_on=TODAY - dt.timedelta(days=3))
    return patron


@pytest.fixture
def handler():
    return RecordingHandler()


@pytest.fixture
def server(handler):
    controller = smtp_server(handler)
    yield controller
    controller.stop()


@pytest.mark.django_db
def test_a_mixed_batch_reaches_each_patron_in_the_patrons_own_language(
    installation, north, north_staff, server, handler
):
    row = factories.smtp_settings(
        installation=installation,
        host="127.0.0.1",
        port=server.port,
        transport="none",
        from_name="Biblioteca Norte",
        from_email="biblioteca@north.example.org",
    )
    school = north.schools.get()
    school.name = "Escuela Núñez"
    school.save()
    overdue(school, "José Núñez-Ñandú de la Peña y Castañeda Ibáñez", "jose@example.org", "es", "Cien años de soledad")
    overdue(school, "Bo Chen", "bo@example.org", "en", "Dune")
    overdue(school, "Zoë Ångström", "zoe@example.org", "", "Matilda")  # no choice: the district's default
    north.default_language = "es"
    north.save()

    with translation.override("en"):  # the staff member reads English; each patron gets their own language
        queue.notices_queue_overdue(school=school, acting_user=north_staff, today=TODAY)
    worker.deliver(row.pk)

    received = {message.rcpt_tos[0]: message for message in handler.messages}
    assert set(received) == {"jose@example.org", "bo@example.org", "zoe@example.org"}
    for address, language in (("jose@example.org", "es"), ("zoe@example.org", "es"), ("bo@example.org", "en")):
        raw = received[address].data
        message = email.message_from_bytes(raw, policy=email.policy.default)
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert message["Content-Language"] == language
        assert not message.defects and all(not part.defects for part in message.walk())
        assert all(len(line) <= 998 and line.isascii() for line in raw.split(b"\r\n"))
        assert f'<html lang="{language}">' in html
        if language == "es":
            assert message["Subject"] == "Préstamos vencidos de la biblioteca – Escuela Núñez"
            assert "Según nuestros registros" in text and "Según nuestros registros" in html
            assert "vencía el 7 de marzo de 2025" in text and "Biblioteca de Escuela Núñez" in html
        else:
            assert message["Subject"] == "Overdue library items – Escuela Núñez"
            assert "Our records show" in text and "due March 7, 2025" in text and "Our records show" in html
        notice = Notice.objects.get(recipient_email=address)
        assert notice.language == language
        # RFC 2047: the name comes back whole. (The email package's address parser puts a space between adjacent
        # encoded words, which RFC 2047 6.2 says to ignore; decode_header follows the RFC.)
        raw_to = email.message_from_bytes(raw, policy=email.policy.compat32)["To"]
        assert str(make_header(decode_header(raw_to))) == f"{notice.recipient_name} <{address}>"


@pytest.mark.django_db
def test_a_resource_list_follows_the_known_patrons_language_and_else_the_districts(installation, north, north_staff):
    school = north.schools.get()
    Patron.objects.create(school=school, name="Ana Lima", email="ana@example.org", language="es")
    factories.smtp_settings(installation=installation, host="smtp.consortium.example.org")
    queue.notices_queue_resource_list(
        school=school, acting_user=north_staff, recipients=["ana@example.org", "guest@example.org"], titles=["Dune"]
    )
    languages = dict(Notice.objects.values_list("recipient_email", "language"))
    assert languages == {"ana@example.org": "es", "guest@example.org": "en"}


@pytest.mark.django_db
def test_the_send_page_counts_notices_per_language_and_previews_one_of_each(client, installation, north, north_staff):
    factories.smtp_settings(installation=installation, host="smtp.consortium.example.org")
    school = north.schools.get()
    overdue(school, "Ana Lima", "ana@example.org", "es", "Dune")
    overdue(school, "Bo Chen", "bo@example.org", "en", "Matilda")
    overdue(school, "Chloé Durand", "chloe@example.org", "es", "Holes")
    overdue(school, "Dev Patel", "", "en", "Wonder")  # cannot be emailed: not counted
    client.force_login(north_staff)

    html = client.get(reverse("school_notices", kwargs={"slug": school.slug})).content.decode()

    counts = re.search(r'<p id="language-counts">(.*?)</p>', html, re.DOTALL).group(1)
    assert re.sub(r"<[^>]+>|\s+", "", counts) == "Noticesbylanguage:English:1·Spanish:2"
    english = re.search(r'id="notice-preview-en" lang="en"(.*?)</details>', html, re.DOTALL).group(1)
    spanish = re.search(r'id="notice-preview-es" lang="es"(.*?)</details>', html, re.DOTALL).group(1)
    assert "Bo Chen" in english and "Overdue library items – North High" in english
    assert "Ana Lima" in spanish and "Préstamos vencidos de la biblioteca – North High" in spanish
    assert "Estimado/a Ana Lima:" in spanish and "Spanish: the notice Ana Lima would receive" in spanish


@pytest.mark.django_db
def test_the_test_email_is_written_in_the_language_of_the_administrator_who_sends_it(
    client, consortium, super_admin, starttls_server
):
    client.force_login(super_admin)
    data = {
        "smtp-host": "localhost",
        "smtp-port": str(starttls_server.port),
        "smtp-transport": "tls",
        "smtp-username": USERNAME,
        "smtp-password": PASSWORD,
        "smtp-from_name": "Biblioteca Norte",
        "smtp-from_email": "biblioteca@north.example.org",
        "smtp-max_per_hour": "500",
        "test-send_to": "admin@example.org",
    }

    html = client.post(reverse("installation_test_email"), data, HTTP_X_REQUESTED_WITH="fetch", **SPANISH)

    assert "El servidor de correo funciona" in html.content.decode()
    message = email.message_from_bytes(starttls_server.recorded.messages[-1].data, policy=email.policy.default)
    assert message["Subject"] == "Correo de prueba de Destiny Mail para Test Consortium"
    assert message["Content-Language"] == "es"
    assert "Este es un correo de prueba de Destiny Mail." in message.get_body(("plain",)).get_content()


@pytest.mark.django_db
def test_commands_speak_the_language_of_the_shell(installation, monkeypatch, capsys):
    before = translation.get_language()
    monkeypatch.setenv("LANG", "es_ES.UTF-8")
    call_command("smtp_secrets", "check")
    assert capsys.readouterr().out.strip() == "legibles: 0; ilegibles: 0"
    monkeypatch.setenv("LANG", "C.UTF-8")
    call_command("smtp_secrets", "check")
    assert capsys.readouterr().out.strip() == "0 readable, 0 unreadable"
    assert translation.get_language() == before  # the caller's language is left as it was


@pytest.mark.parametrize("argv", [["smtp_test", "--help"], ["help", "smtp_test"]])
def test_a_commands_help_speaks_the_language_of_the_shell(monkeypatch, capsys, argv):
    monkeypatch.setenv("LANG", "es_ES.UTF-8")
    with contextlib.suppress(SystemExit):  # --help exits once printed
        ManagementUtility(["manage.py", *argv]).execute()
    help_text = capsys.readouterr().out
    assert "Prueba un servidor SMTP como lo hace el botón «Probar servidor»" in help_text
    assert "Envía además un correo de prueba a esta dirección." in help_text
    assert "Also send" not in help_text


@pytest.mark.django_db
def test_the_delivery_log_gives_a_failed_notices_reason_in_the_readers_language(
    client, installation, north, north_admin
):
    factories.smtp_settings(installation=installation, host="smtp.consortium.example.org")
    Notice.objects.create(
        kind="overdue",
        school=north.schools.get(),
        recipient_name="Ana Lima",
        recipient_email="ana@example.org",
        message_id="<failed@test>",
        status="failed",
        attempts=1,
        last_category="recipient_rejected",
    )
    client.force_login(north_admin)
    html = client.get(reverse("district_delivery_log", kwargs={"slug": "north"}), **SPANISH).content.decode()
    assert "El servidor rechazó al destinatario" in html and "Fallido: <strong>1</strong>" in html
    assert english_left(html, "Test Consortium", "North High", "North", "Ana Lima") == []


@pytest.mark.django_db
def test_what_the_worker_booked_in_english_reads_in_spanish_on_the_pages(
    client, installation, north, north_admin, north_staff, super_admin, handler, server
):
    """The worker runs in no reader's language: a pause and a given-up notice are worded when shown."""
    row = factories.smtp_settings(installation=installation, host="127.0.0.1", port=server.port, transport="none")
    north.mail_source = MailSource.CONSORTIUM
    north.save()
    school = north.schools.get()
    overdue(school, "Ana Lima", "ana@example.org", "es", "Dune")
    handler.replies["RCPT"] = "452 4.2.2 Mailbox full"
    queue.notices_queue_overdue(school=school, acting_user=north_staff, today=TODAY)
    Notice.objects.update(queued_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=4))
    with translation.override("en"):
        worker.deliver(row.pk)  # refused for days: delivery gives up on it
    handler.replies = {"MAIL": "553 5.7.1 Sender address rejected: not owned by user"}
    overdue(school, "Bo Chen", "bo@example.org", "en", "Matilda")
    queue.notices_queue_overdue(school=school, acting_user=north_staff, today=TODAY)
    with translation.override("en"):
        worker.deliver(row.pk)  # the server refuses the From address: delivery pauses
    row.refresh_from_db()
    assert row.pause_category == "sender_rejected" and row.pause_detail.startswith("553 5.7.1")
    client.force_login(north_admin)

    log = client.get(reverse("district_delivery_log", kwargs={"slug": "north"}), **SPANISH).content.decode()

    assert "Se abandonó tras 1 intento: El servidor pidió que se intente más tarde" in log
    assert english_left(log, "Test Consortium", "North High", "North", "Ana Lima", "Bo Chen") == []
    client.force_login(super_admin)
    options = client.get(reverse("installation_options"), **SPANISH).content.decode()
    assert "El servidor dijo:</strong> <code>553 5.7.1 Sender address rejected" in options
    # Dates as Spanish writes them: the month's abbreviation in lower case.
    assert re.search(r"Desde el \d{1,2} (ene|feb|mar|abr|may|jun|jul|ago|sept?|oct|nov|dic) \d{4} \d\d:\d\d\.", options)
    prose = options.replace("553 5.7.1 Sender address rejected: not owned by user", " ")  # the server's own words
    assert english_left(prose, "Test Consortium", "North") == []


@pytest.mark.django_db
def test_the_demo_gives_half_its_patrons_spanish(north):
    seed_circulation_demo()
    languages = Counter(Patron.objects.values_list("language", flat=True))
    assert languages == {"en": 5, "es": 5}


@pytest.mark.django_db
def test_a_test_in_spanish_still_counts_for_the_settings_saved_after_it_in_english(
    client, consortium, super_admin, implicit_tls_server
):
    client.force_login(super_admin)
    data = {
        "smtp-host": "localhost",
        "smtp-port": str(implicit_tls_server.port),
        "smtp-transport": "ssl",  # its label differs between the languages: "SSL (TLS implícito)"
        "smtp-username": USERNAME,
        "smtp-password": PASSWORD,
        "smtp-max_per_hour": "500",
    }
    html = client.post(reverse("installation_test_server"), data, HTTP_X_REQUESTED_WITH="fetch", **SPANISH)
    assert "SSL (TLS implícito)" in html.content.decode()

    client.post(reverse("installation_options"), data, HTTP_ACCEPT_LANGUAGE="en")

    assert scope_settings(consortium).health == "working"


def test_the_demo_identity_providers_consent_page_follows_the_browsers_language():
    from settings_app.mail.localserver.oauth_http import consent_page

    values = {"client": "destiny-mail-demo", "scope": "smtp", "account": "demo", "hidden": ""}
    spanish = consent_page(**values, accept_language="es-ES,es;q=0.9,en;q=0.8")
    english = consent_page(**values, accept_language="fr-FR,fr;q=0.9")  # not spoken here: the default

    assert '<html lang="es">' in spanish and ">Permitir</button>" in spanish
    assert "<strong>destiny-mail-demo</strong> pide enviar correo en su nombre (ámbito <code>smtp</code>)" in spanish
    assert english_left(spanish, "destiny-mail-demo") == []
    assert '<html lang="en">' in english and ">Allow</button>" in english
    hostile = consent_page(**(values | {"client": "<script>x</script>"}), accept_language="")
    assert "<script>" not in hostile
