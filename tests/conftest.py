import os

import pytest
from django.db import connections
from django.test.utils import override_settings
from django.utils import translation

from settings_app.models import RoleKind
from tests import factories

pytest_plugins = ["tests.smtp_servers", "tests.oauth_servers"]


def pytest_collection_modifyitems(config, items):
    """Browser tests run last: sync Playwright keeps an event loop in the main thread."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


def pytest_runtest_setup(item):
    """Tests marked postgres need what SQLite lacks (SKIP LOCKED, concurrent writers): skip them elsewhere."""
    if item.get_closest_marker("postgres") and connections["default"].vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://...)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if item.get_closest_marker("browser") is None:
        return (yield)
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        return (yield)
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture(autouse=True)
def language_reset():
    """A request activates its reader's language in the thread that serves it; the next test starts without."""
    yield
    translation.deactivate()


@pytest.fixture(autouse=True, scope="session")
def fast_password_hashing():
    """Real hashing costs most of a second per test user; what these tests check does not depend on it."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture
def installation(db):
    return factories.installation()


@pytest.fixture
def consortium(installation, smtp_ca):
    """The installation, trusting the test CA and announcing the test EHLO name: ready for the test servers."""
    from tests.smtp_servers import EHLO_NAME  # imported late: pytest rewrites its asserts as a plugin

    installation.ca_bundle = smtp_ca.pem
    installation.ehlo_name = EHLO_NAME
    installation.save()
    return installation


@pytest.fixture
def north(installation):
    district = factories.district("North", slug="north")
    factories.school(district, "North High")
    return district


@pytest.fixture
def south(installation):
    district = factories.district("South", slug="south")
    factories.school(district, "South Elementary")
    return district


@pytest.fixture
def super_admin(installation):
    user = factories.user("super")
    factories.role(user, RoleKind.SUPER_ADMIN)
    return user


@pytest.fixture
def north_admin(north):
    user = factories.user("north-admin")
    factories.role(user, RoleKind.DISTRICT_ADMIN, district=north)
    return user


@pytest.fixture
def south_admin(south):
    user = factories.user("south-admin")
    factories.role(user, RoleKind.DISTRICT_ADMIN, district=south)
    return user


@pytest.fixture
def north_staff(north):
    user = factories.user("north-staff")
    factories.role(user, RoleKind.LIBRARY_STAFF, school=north.schools.get())
    return user


@pytest.fixture
def no_role_user(installation):
    return factories.user("nobody")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's Chromium: Playwright cannot download its own browser here."""
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture
def login(live_server, page):
    """Log `page` in as a user (fixture password "pw") through the real login form."""

    def _login(user):
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill("pw")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state()

    return _login
