from django.urls import path

from settings_app.models import TestKind
from settings_app.views import setup, testing

SERVER, EMAIL = {"kind": TestKind.SERVER}, {"kind": TestKind.EMAIL}

urlpatterns = [
    path("", setup.home, name="home"),
    path("setup/", setup.setup_index, name="setup"),
    path("setup/installation/options/", setup.options, name="installation_options"),
    path("setup/installation/general/", setup.installation_general, name="installation_general"),
    path("setup/installation/options/clear-password/", setup.clear_password, name="installation_clear_password"),
    path("setup/installation/options/test-server/", testing.test_connection, SERVER, name="installation_test_server"),
    path("setup/installation/options/test-email/", testing.test_connection, EMAIL, name="installation_test_email"),
    path("setup/districts/<slug:slug>/options/", setup.options, name="district_options"),
    path("setup/districts/<slug:slug>/options/clear-password/", setup.clear_password, name="district_clear_password"),
    path(
        "setup/districts/<slug:slug>/options/test-server/", testing.test_connection, SERVER, name="district_test_server"
    ),
    path("setup/districts/<slug:slug>/options/test-email/", testing.test_connection, EMAIL, name="district_test_email"),
]
