from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from settings_app.models.scopes import School


class Patron(models.Model):
    """Someone who borrows from a school library; patrons never log in, they receive mail."""

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="patrons")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    # The language of the patron's notices; blank: the district's default language.
    language = models.CharField(
        _("language"),
        max_length=8,
        choices=settings.LANGUAGES,
        blank=True,
        help_text=_("Blank: the district's default."),
    )
    # Set when a mail server refused the address permanently (5xx on RCPT); staff see it on the patron list.
    address_refused_at = models.DateTimeField(null=True, blank=True)
    address_refused_reply = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def address_refused(self) -> bool:
        return self.address_refused_at is not None


class Loan(models.Model):
    patron = models.ForeignKey(Patron, on_delete=models.CASCADE, related_name="loans")
    title = models.CharField(max_length=300)
    due_on = models.DateField()
    returned_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["due_on", "id"]
        indexes = [models.Index(fields=["patron", "due_on"], condition=Q(returned_on__isnull=True), name="open_loans")]

    def __str__(self) -> str:
        return self.title
