from django.apps import AppConfig


class SettingsAppConfig(AppConfig):
    name = "settings_app"
    verbose_name = "Destiny Mail"

    def ready(self) -> None:
        from settings_app import checks  # noqa: F401 - registers the deployment checks
