from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from settings_app.mail.diagnosis import category_title
from settings_app.models.circulation import Patron
from settings_app.models.scopes import School
from settings_app.models.smtp import SmtpSettings


class NoticeKind(models.TextChoices):
    OVERDUE = "overdue", _("Overdue notice")
    RESOURCE_LIST = "resource_list", _("Resource List")


class NoticeStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")


class NoticeQuerySet(models.QuerySet["Notice"]):
    def due(self, now: datetime) -> "NoticeQuerySet":
        """Notices a worker may claim now: queued and due, or left behind by a worker whose lease ran out."""
        queued = Q(status=NoticeStatus.QUEUED, next_attempt_at__lte=now)
        return self.filter(queued | Q(status=NoticeStatus.SENDING, lease_until__lt=now))


class Notice(models.Model):
    """One message to one recipient, written in the same transaction as the staff action that asked for it.

    Its Message-ID and Date are fixed here, so every attempt sends the same message.
    """

    kind = models.CharField(max_length=20, choices=NoticeKind)
    status = models.CharField(max_length=10, choices=NoticeStatus, default=NoticeStatus.QUEUED)
    # The indexes below lead with school. A patron's own index is for deleting patrons: PostgreSQL checks each
    # deleted patron's notices, which without it means reading every notice once per patron.
    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="notices", db_index=False)
    patron = models.ForeignKey(Patron, null=True, blank=True, on_delete=models.SET_NULL, related_name="notices")
    recipient_name = models.CharField(max_length=200, blank=True)
    recipient_email = models.EmailField()
    # The staff member's own From/Reply-To; blank means the configuration's.
    sender_name = models.CharField(max_length=100, blank=True)
    sender_email = models.EmailField(blank=True)
    note = models.TextField(blank=True)
    # The recipient's language when queued: the message is written in it.
    language = models.CharField(max_length=8, default=settings.LANGUAGE_CODE)
    items = models.JSONField(default=list, help_text="The titles (and due dates) the message lists, as queued.")
    message_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)
    # Every index costs each status change (two per notice), so these rarely searched links have none.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    queued_at = models.DateTimeField(default=timezone.now, help_text="Queued, or retried by an administrator.")
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    # Why the last attempt did not deliver (a diagnosis Category), and whether delivery then stopped trying.
    last_category = models.CharField(max_length=40, blank=True)
    gave_up = models.BooleanField(default=False)
    last_reply = models.CharField(max_length=500, blank=True)
    smtp_settings = models.ForeignKey(
        SmtpSettings,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Used last.",
        db_index=False,
    )
    # Times the message may have reached the server without us hearing so (lost after the final dot).
    possible_duplicates = models.PositiveSmallIntegerField(default=0)

    objects = NoticeQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["school", "next_attempt_at"],
                condition=Q(status__in=["queued", "sending"]),
                name="notice_pending",
            ),
            models.Index(fields=["school", "-created_at"], name="notice_log"),
            models.Index(fields=["status", "-created_at"], name="notice_status"),
            models.Index(fields=["-created_at", "-id"], name="notice_newest"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="sending", lease_until__isnull=False) | ~Q(status="sending"),
                name="sending_notice_has_lease",
            ),
            # A constraint rather than unique=True: PostgreSQL then needs no second, pattern index.
            models.UniqueConstraint(fields=["message_id"], name="notice_message_id_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.message_id}"

    @property
    def problem(self) -> str:
        """Why the notice is not delivered yet, in the reader's language (so it is worded when shown, not stored)."""
        if self.status == NoticeStatus.SENT or not self.last_category:
            return ""
        reason = category_title(self.last_category)
        if self.status != NoticeStatus.FAILED or not self.gave_up:
            return str(reason)
        if not self.attempts:
            return gettext("Gave up waiting for the server: %(reason)s") % {"reason": reason}
        return ngettext(
            "Gave up after %(count)d attempt: %(reason)s", "Gave up after %(count)d attempts: %(reason)s", self.attempts
        ) % {"count": self.attempts, "reason": reason}


class AttemptOutcome(models.TextChoices):
    SENT = "sent", _("Sent")
    DEFERRED = "deferred", _("Deferred (will retry)")
    FAILED = "failed", _("Failed")
    PAUSED = "paused", _("Waiting: configuration paused")
    UNCONFIRMED = "unconfirmed", _("Unconfirmed (will retry, possible duplicate)")


class DeliveryAttempt(models.Model):
    """One try at handing a notice to the mail server, with the server's reply (never a secret)."""

    notice = models.ForeignKey(Notice, on_delete=models.CASCADE, related_name="attempts_log")
    at = models.DateTimeField(default=timezone.now)
    smtp_settings = models.ForeignKey(
        SmtpSettings, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    outcome = models.CharField(max_length=12, choices=AttemptOutcome)
    category = models.CharField(max_length=40, blank=True)
    reply_code = models.PositiveSmallIntegerField(null=True, blank=True)
    reply = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()} {self.reply_code or ''}".strip()


class DeliveryState(models.Model):
    """Delivery bookkeeping of one SMTP configuration: the row locked while reserving its hourly cap, the back-off
    after its server was busy (421), silent or unreachable, and what keeps workers' rounds from trying it for
    nothing. Every worker reads it, so a back-off holds across machines."""

    smtp_settings = models.OneToOneField(SmtpSettings, on_delete=models.CASCADE, related_name="delivery_state")
    not_before = models.DateTimeField(null=True, blank=True)
    busy_streak = models.PositiveSmallIntegerField(default=0)
    # Why it backs off (a diagnosis Category), and the server's own words if it said any.
    busy_category = models.CharField(max_length=40, blank=True)
    busy_reply = models.CharField(max_length=500, blank=True)
    # A worker is opening a session to the server until then: others leave it alone (one slot per silent server).
    opening_until = models.DateTimeField(null=True, blank=True)
    # The hourly cap is used up until then: rounds leave the configuration out (its own task runs at that time).
    cap_full_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Delivery state of {self.smtp_settings_id}"

    @property
    def backing_off_until(self) -> datetime | None:
        """When the configuration may send again after a back-off; None when it may now."""
        return self.not_before if self.not_before and self.not_before > timezone.now() else None

    @property
    def busy_cause(self) -> str:
        """Why it backs off, in the reader's language."""
        return str(category_title(self.busy_category))


class CapReservation(models.Model):
    """Slots of a configuration's hourly cap, used (or held) until `at`: sends, batches and test emails."""

    smtp_settings = models.ForeignKey(SmtpSettings, on_delete=models.CASCADE, related_name="+")
    count = models.PositiveIntegerField()
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["smtp_settings", "at"], name="cap_window")]

    def __str__(self) -> str:
        return f"{self.count} at {self.at:%H:%M:%S}"
