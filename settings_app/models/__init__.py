from settings_app.models.scopes import (
    District,
    HostingMode,
    Installation,
    MailSource,
    Role,
    RoleKind,
    School,
    Scope,
    scope_kwargs,
)
from settings_app.models.smtp import SettingsChange, SmtpSettings, SmtpTestRecord, TestKind

__all__ = [
    "District",
    "HostingMode",
    "Installation",
    "MailSource",
    "Role",
    "RoleKind",
    "School",
    "Scope",
    "SettingsChange",
    "SmtpSettings",
    "SmtpTestRecord",
    "TestKind",
    "scope_kwargs",
]
