from settings_app.models.circulation import Loan, Patron
from settings_app.models.delivery import (
    AttemptOutcome,
    CapReservation,
    DeliveryAttempt,
    DeliveryState,
    Notice,
    NoticeKind,
    NoticeStatus,
)
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
from settings_app.models.smtp import SettingsChange, SmtpSettings, SmtpTestRecord, TestKind, describe_destination

__all__ = [
    "AttemptOutcome",
    "CapReservation",
    "DeliveryAttempt",
    "DeliveryState",
    "District",
    "HostingMode",
    "Installation",
    "Loan",
    "MailSource",
    "Notice",
    "NoticeKind",
    "NoticeStatus",
    "Patron",
    "Role",
    "RoleKind",
    "School",
    "Scope",
    "SettingsChange",
    "SmtpSettings",
    "SmtpTestRecord",
    "TestKind",
    "describe_destination",
    "scope_kwargs",
]
