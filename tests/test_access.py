import pytest
from django.urls import reverse

from settings_app.models import Role, SettingsChange, SmtpSettings, SmtpTestRecord
from tests import factories

pytestmark = pytest.mark.django_db

FORM = {
    "mail_source": "own",
    "smtp-host": "smtp.changed.example.org",
    "smtp-port": "587",
    "smtp-transport": "tls",
    "smtp-username": "",
    "smtp-password": "",
    "smtp-from_name": "",
    "smtp-from_email": "",
    "smtp-max_per_hour": "100",
    "test-send_to": "patron@example.org",
}
INSTALLATION_FORM = {"name": "Renamed", "hosting_mode": "self_hosted", "allowed_networks": "127.0.0.0/8"}

URL_NAMES = {
    "view": "options",
    "save": "options",
    "clear": "clear_password",
    "test_server": "test_server",
    "test_email": "test_email",
    "general": "general",
}


def url(scope, action):
    if scope == "installation":
        return reverse(f"installation_{URL_NAMES[action]}")
    return reverse(f"district_{URL_NAMES[action]}", kwargs={"slug": scope})


SCOPES = ["installation", "north", "south"]
ACTIONS = ["view", "save", "clear", "test_server", "test_email"]
# Who may do anything at all to which scope.
ALLOWED = {
    "super_admin": {"installation", "north", "south"},
    "north_admin": {"north"},
    "south_admin": {"south"},
    "north_staff": set(),
    "no_role_user": set(),
}
CASES = [
    (persona, scope, action)
    for persona in [*ALLOWED, "anonymous"]
    for scope in SCOPES
    for action in ([*ACTIONS, "general"] if scope == "installation" else ACTIONS)
]


@pytest.fixture
def world(installation, north, south, super_admin, north_admin, south_admin, north_staff, no_role_user):
    for scope in (installation, north, south):
        factories.smtp_settings(**{"installation" if scope is installation else "district": scope}, password="s3cret")
    return {
        "super_admin": super_admin,
        "north_admin": north_admin,
        "south_admin": south_admin,
        "north_staff": north_staff,
        "no_role_user": no_role_user,
    }


def snapshot():
    return (
        sorted(SmtpSettings.objects.values_list("id", "host", "password_sealed", "max_per_hour")),
        SettingsChange.objects.count(),
        SmtpTestRecord.objects.count(),
    )


@pytest.mark.parametrize(("persona", "scope", "action"), CASES)
def test_role_scope_action_matrix(client, world, plain_server, persona, scope, action):
    if persona != "anonymous":
        client.force_login(world[persona])
    before = snapshot()

    if action == "view":
        response = client.get(url(scope, action))
    elif action == "general":
        response = client.post(url(scope, action), INSTALLATION_FORM)
    else:
        test_form = {"smtp-host": "localhost", "smtp-port": plain_server.port, "smtp-transport": "none"}
        response = client.post(url(scope, action), {**FORM, **test_form} if action.startswith("test") else FORM)

    if persona == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
        assert snapshot() == before
    elif scope in ALLOWED[persona]:
        assert response.status_code == (200 if action in ("view", "test_server", "test_email") else 302)
        if action != "view":
            assert snapshot() != before
    else:
        assert response.status_code == 404
        assert snapshot() == before
        assert plain_server.recorded.ehlo_names == []


def test_a_posted_scope_field_is_ignored(client, world, north, south):
    client.force_login(world["north_admin"])
    client.post(
        reverse("district_options", kwargs={"slug": "north"}), {**FORM, "district": south.pk, "installation": 1}
    )
    assert SmtpSettings.objects.get(district=north).host == "smtp.changed.example.org"
    assert SmtpSettings.objects.get(district=south).host == "localhost"


def test_a_removed_administrator_loses_access_on_the_next_request(client, world, north_admin):
    client.force_login(north_admin)
    url = reverse("district_options", kwargs={"slug": "north"})
    assert client.get(url).status_code == 200
    Role.objects.filter(user=north_admin).delete()
    assert client.get(url).status_code == 404


def test_a_deactivated_administrator_is_logged_out(client, world, north_admin):
    client.force_login(north_admin)
    north_admin.is_active = False
    north_admin.save()
    response = client.get(reverse("district_options", kwargs={"slug": "north"}))
    assert response.status_code == 302


def test_a_district_using_the_consortium_server_never_sees_its_host_or_user(client, installation, north, north_admin):
    factories.smtp_settings(
        installation=installation,
        host="smtp.consortium-secret.example.org",
        username="consortium-user",
        password="consortium-pass",
    )
    client.force_login(north_admin)
    html = client.get(reverse("district_options", kwargs={"slug": "north"})).content.decode()
    assert "using the consortium server" in html
    for secret in ("consortium-secret", "consortium-user", "consortium-pass"):
        assert secret not in html


def test_a_user_without_a_role_is_told_so(client, no_role_user):
    client.force_login(no_role_user)
    assert client.get("/").status_code == 403
