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
    "describe_destination",
    "scope_kwargs",
]

__all__ += [
    "AttemptOutcome",
    "CapReservation",
    "DeliveryAttempt",
    "DeliveryState",
    "Loan",
    "Notice",
    "NoticeKind",
    "NoticeStatus",
    "Patron",
]
