from django.urls import path

from settings_app.views import setup

urlpatterns = [
    path("", setup.home, name="home"),
    path("setup/", setup.setup_index, name="setup"),
    path("setup/installation/options/", setup.options, name="installation_options"),
    path("setup/installation/general/", setup.installation_general, name="installation_general"),
    path("setup/installation/options/clear-password/", setup.clear_password, name="installation_clear_password"),
    path("setup/districts/<slug:slug>/options/", setup.options, name="district_options"),
    path("setup/districts/<slug:slug>/options/clear-password/", setup.clear_password, name="district_clear_password"),
]
