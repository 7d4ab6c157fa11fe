from django.urls import path

from settings_app.models import TestKind
from settings_app.views import delivery_log, notices, oauth, setup, testing

SERVER, EMAIL = {"kind": TestKind.SERVER}, {"kind": TestKind.EMAIL}

urlpatterns = [
    path("", setup.home, name="home"),
    path("setup/", setup.setup_index, name="setup"),
    path("setup/installation/options/", setup.options, name="installation_options"),
    path("setup/installation/general/", setup.installation_general, name="installation_general"),
    path("setup/installation/options/clear-password/", setup.clear_password, name="installation_clear_password"),
    path("setup/installation/options/test-server/", testing.test_connection, SERVER, name="installation_test_server"),
    path("setup/installation/options/test-email/", testing.test_connection, EMAIL, name="installation_test_email"),
    path("setup/installation/options/detect/", testing.detect, name="installation_detect"),
    path("setup/installation/options/oauth/", oauth.oauth_settings, name="installation_oauth"),
    path("setup/installation/options/oauth/connect/", oauth.oauth_connect, name="installation_oauth_connect"),
    path("setup/installation/options/oauth/disconnect/", oauth.oauth_disconnect, name="installation_oauth_disconnect"),
    path("setup/districts/<slug:slug>/options/", setup.options, name="district_options"),
    path("setup/districts/<slug:slug>/options/clear-password/", setup.clear_password, name="district_clear_password"),
    path(
        "setup/districts/<slug:slug>/options/test-server/", testing.test_connection, SERVER, name="district_test_server"
    ),
    path("setup/districts/<slug:slug>/options/test-email/", testing.test_connection, EMAIL, name="district_test_email"),
    path("setup/districts/<slug:slug>/options/detect/", testing.detect, name="district_detect"),
    path("setup/districts/<slug:slug>/options/oauth/", oauth.oauth_settings, name="district_oauth"),
    path("setup/districts/<slug:slug>/options/oauth/connect/", oauth.oauth_connect, name="district_oauth_connect"),
    path(
        "setup/districts/<slug:slug>/options/oauth/disconnect/",
        oauth.oauth_disconnect,
        name="district_oauth_disconnect",
    ),
    # The one callback URL registered at the identity providers (OAUTH_REDIRECT_URL).
    path("oauth/callback/", oauth.oauth_callback, name="oauth_callback"),
    # Notices and delivery
    path("schools/<slug:slug>/notices/", notices.school_notices, name="school_notices"),
    path("schools/<slug:slug>/resource-list/", notices.resource_list, name="resource_list"),
    path("delivery/", delivery_log.delivery_log, name="delivery_log"),
    path("delivery/retry/", delivery_log.delivery_retry, name="delivery_retry"),
    path("districts/<slug:slug>/delivery/", delivery_log.delivery_log, name="district_delivery_log"),
    path("districts/<slug:slug>/delivery/retry/", delivery_log.delivery_retry, name="district_delivery_retry"),
]
