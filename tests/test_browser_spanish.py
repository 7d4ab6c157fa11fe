"""The configuration flow and the staff flow in Spanish, in a real Chromium whose language is Spanish.

On every page: axe-core finds no serious or critical issue, and no English word of the interface is left. The tests
save the README's Spanish screenshots (docs/screenshots/es-*.png).
"""

import datetime as dt
import email
import email.policy

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from settings_app.models import Loan, Notice, Patron, SmtpSettings
from tests import factories
from tests.smtp_servers import PASSWORD, USERNAME
from tests.test_browser_accessibility import audit, axe_source  # noqa: F401 - fixtures
from tests.test_browser_flows import screenshot
from tests.test_browser_notices import run_worker
from tests.test_languages import english_left

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_context_args(browser_context_args):
    """A browser set to Spanish: it sends Accept-Language: es-ES."""
    return {**browser_context_args, "locale": "es-ES"}


@pytest.fixture
def spanish(page, audit):  # noqa: F811 - the fixture imported above
    """check(name, *names): the page is in Spanish, axe finds nothing blocking, and no English word is left
    (`names` are data: schools, people, titles)."""

    def check(name, *names):
        expect(page.locator("html")).to_have_attribute("lang", "es")
        assert english_left(page.content(), "Test Consortium", "Destiny Mail", *names) == [], name
        audit(name)

    return check


def log_in(page, live_server, user):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Nombre de usuario").fill(user.username)
    page.get_by_label("Contraseña").fill("pw")
    page.get_by_role("button", name="Iniciar sesión").click()
    page.wait_for_load_state()


def test_a_spanish_administrator_sets_up_tests_and_saves_the_server_in_spanish(
    page, live_server, spanish, consortium, north, super_admin, starttls_server
):
    page.goto(f"{live_server.url}/login/")
    spanish("Iniciar sesión")
    log_in(page, live_server, super_admin)
    expect(page.get_by_role("heading", name="Actualizar instalación de Destiny: Test Consortium")).to_be_visible()
    spanish("Opciones")

    page.get_by_label("Proveedor conocido").select_option(label="Gmail / Google Workspace (TLS, 587)")
    expect(page.locator("#preset-caveat")).to_contain_text("contraseña de aplicación")
    # The provider cannot be reached from the tests: a local server with the same transport stands in for it.
    page.get_by_label("Dirección del servidor SMTP (de correo)").fill("localhost")
    page.get_by_role("spinbutton", name="Puerto").fill(str(starttls_server.port))
    page.get_by_label("ID de usuario de autenticación").fill(USERNAME)
    page.get_by_label("Contraseña de autenticación").fill(PASSWORD)
    page.get_by_label("Nombre visible de De/Responder a").fill("Bibliotecas del Consorcio")
    page.get_by_label("Correo de De/Responder a").fill("biblioteca@consortium.example.org")
    page.get_by_role("button", name="Probar servidor").click()
    result = page.locator("#test-result")
    expect(result.get_by_role("heading", name="El servidor de correo funciona")).to_be_visible(timeout=10_000)
    expect(result.get_by_role("row", name="Resolver")).to_be_visible()
    spanish("Opciones con el resultado de Probar servidor", "Gmail / Google Workspace (TLS, 587)")
    screenshot(page, "es-test-server.png")

    page.get_by_label("Enviar el correo de prueba a").fill("admin@example.org")
    page.get_by_role("button", name="Correo de prueba").click()
    expect(result).to_contain_text("El servidor lo aceptó con el id en cola", timeout=10_000)
    sent = email.message_from_bytes(starttls_server.recorded.messages[-1].data, policy=email.policy.default)
    assert sent["Subject"] == "Correo de prueba de Destiny Mail para Test Consortium"

    page.get_by_label("Correo de De/Responder a").fill("")
    page.get_by_role("button", name="Guardar", exact=True).click()
    expect(page.get_by_text("Corrija esto primero")).to_be_visible()
    expect(page.locator("#field-from_email").get_by_text("Rellene también este campo")).to_be_visible()
    spanish("Opciones con errores", "Bibliotecas del Consorcio")

    page.get_by_label("Correo de De/Responder a").fill("biblioteca@consortium.example.org")
    page.get_by_label("Contraseña de autenticación").fill(PASSWORD)
    page.get_by_role("button", name="Guardar", exact=True).click()
    expect(page.get_by_text("Configuración SMTP guardada.")).to_be_visible()
    expect(page.locator(".card-head .badge")).to_have_text("Funciona")
    spanish("Opciones guardadas", "Bibliotecas del Consorcio")
    screenshot(page, "es-installation-options.png")
    row = SmtpSettings.objects.get()
    assert (row.host, row.port, row.username, row.from_name) == (
        "localhost",
        starttls_server.port,
        USERNAME,
        "Bibliotecas del Consorcio",
    )

    page.get_by_role("link", name="Configuración").first.click()
    spanish("Configuración", "North")
    page.get_by_role("link", name="Registro de envíos", exact=True).first.click()
    spanish("Registro de envíos")


def test_spanish_library_staff_see_each_language_and_send_a_mixed_batch(
    page, live_server, spanish, consortium, north, north_staff, starttls_server
):
    factories.smtp_settings(
        installation=consortium,
        host="localhost",
        port=starttls_server.port,
        transport="tls",
        username=USERNAME,
        password=PASSWORD,
        from_name="Bibliotecas del Consorcio",
        from_email="biblioteca@consortium.example.org",
    )
    school = north.schools.get()
    due = timezone.localdate() - dt.timedelta(days=3)
    patrons = [
        ("Ana Lima", "ana", "es", "Cien años de soledad"),
        ("Bo Chen", "bo", "en", "Dune"),
        ("José Núñez", "jose", "es", "Holes"),
    ]
    for name, local, language, title in patrons:
        patron = Patron.objects.create(school=school, name=name, email=f"{local}@example.org", language=language)
        Loan.objects.create(patron=patron, title=title, due_on=due)
    names = ("North High", "North", "Ana Lima", "Bo Chen", "José Núñez", "Bibliotecas del Consorcio")

    log_in(page, live_server, north_staff)
    expect(page.get_by_role("heading", name="Enviar avisos de préstamos vencidos")).to_be_visible()
    expect(page.locator("#overdue-summary")).to_contain_text("3 lectores con 3 préstamos vencidos")
    expect(page.locator("#language-counts")).to_contain_text("Inglés: 1")
    expect(page.locator("#language-counts")).to_contain_text("Español: 2")
    page.locator("#notice-preview-en summary").click()  # the first preview is open: close it, then open each
    page.locator("#notice-preview-en summary").click()
    page.locator("#notice-preview-es summary").click()
    expect(page.locator("#notice-preview-en")).to_contain_text("Overdue library items – North High")
    expect(page.locator("#notice-preview-es")).to_contain_text("Préstamos vencidos de la biblioteca – North High")
    # The previews are notices as patrons get them: the English one is in English, marked lang="en".
    spanish("Enviar avisos", *names)
    screenshot(page, "es-notices.png")

    page.get_by_role("button", name="Enviar avisos de préstamos vencidos").click()
    expect(page.get_by_text("3 avisos de préstamos vencidos en cola.")).to_be_visible()
    run_worker()
    received = {m.rcpt_tos[0]: m.message for m in starttls_server.recorded.messages}
    assert received["ana@example.org"]["Content-Language"] == "es"
    assert received["bo@example.org"]["Content-Language"] == "en"
    assert set(Notice.objects.values_list("status", flat=True)) == {"sent"}

    page.get_by_role("link", name="Enviar una lista de recursos").first.click()
    spanish("Enviar una lista de recursos", *names)
    page.get_by_role("button", name="Enviar la lista de recursos").click()
    expect(page.get_by_text("Este campo es obligatorio.").first).to_be_visible()
    spanish("Enviar una lista de recursos con errores", *names)


def test_the_language_switch_works_without_javascript_and_is_remembered(browser, live_server, super_admin):
    context = browser.new_context(java_script_enabled=False, locale="en-US")
    page = context.new_page()
    page.goto(f"{live_server.url}/login/")
    expect(page.locator("html")).to_have_attribute("lang", "en")

    page.get_by_role("button", name="Español").click()

    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.get_by_role("heading", name="Iniciar sesión")).to_be_visible()
    assert page.url == f"{live_server.url}/login/"
    log_in(page, live_server, super_admin)
    expect(page.get_by_role("heading", name="Actualizar instalación de Destiny: Test Consortium")).to_be_visible()
    cookie = {c["name"]: c["value"] for c in context.cookies()}[settings.LANGUAGE_COOKIE_NAME]
    assert cookie == "es"
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Update Destiny Installation: Test Consortium")).to_be_visible()
    context.close()


def test_the_sign_in_card_is_spanish_through_and_its_copy_button_announces_in_spanish(
    page, live_server, spanish, settings, consortium, super_admin
):
    settings.OAUTH_REDIRECT_URL = "https://mail.example.org/oauth/callback/"
    factories.smtp_settings(installation=consortium, host="smtp.office365.com", username="informes@example.org")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    log_in(page, live_server, super_admin)

    card = page.locator("#oauth")
    card.get_by_label("Iniciar sesión con Microsoft 365 / Google (OAuth 2.0)").check()
    card.get_by_label("Proveedor de identidad").select_option(label="Microsoft 365")
    card.get_by_label("ID de cliente").fill("00000000-0000-0000-0000-000000000000")
    card.get_by_role("button", name="Guardar la configuración de inicio de sesión").click()
    expect(page.get_by_text("Configuración de inicio de sesión guardada.")).to_be_visible()
    expect(page.locator("#oauth-status")).to_contain_text("No hay ninguna cuenta conectada.")
    expect(card.get_by_role("button", name="Conectar la cuenta")).to_be_visible()
    card.get_by_role("button", name="Copiar").click()
    expect(card.get_by_role("status")).to_have_text("Copiada")
    spanish("Opciones con la tarjeta de inicio de sesión", "Microsoft 365", "informes@example.org")
    screenshot(page, "es-oauth-sign-in.png")
