"""Input of the notice pages and the delivery log. Forms validate; services write."""

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import QuerySet
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from settings_app.forms import clean_sender_pair, validate_display_name, validate_printable
from settings_app.models import NoticeKind, NoticeStatus, School

MAX_RECIPIENTS = 50
MAX_TITLES = 100


class SenderForm(forms.Form):
    """The seed's option: whoever sends may give their own display name and email (both or neither)."""

    sender_name = forms.CharField(
        label=_("Your display name"), required=False, max_length=100, validators=[validate_display_name]
    )
    sender_email = forms.EmailField(label=_("Your email"), required=False, validators=[validate_printable])

    def __init__(self, *args, default_sender: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        help_text = _("Shown as the sender; replies come back to your email.")
        if default_sender:
            hint = _("Leave both blank to send as %(sender)s.") % {"sender": default_sender}
            help_text = format_lazy("{} {}", help_text, hint)
        self.fields["sender_name"].help_text = help_text
        self.fields["sender_email"].help_text = _("Optional, but if the name is set this must be too.")

    def clean_sender_name(self) -> str:
        return self.cleaned_data["sender_name"].strip()

    def clean(self) -> dict | None:
        cleaned = super().clean()
        clean_sender_pair(self, "sender_name", "sender_email")
        return cleaned


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.replace(",", "\n").splitlines() if line.strip()]


class ResourceListForm(SenderForm):
    recipients = forms.CharField(
        label=_("Recipients"),
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text=format_lazy(_("Email addresses, one per line (up to {max})."), max=MAX_RECIPIENTS),
    )
    titles = forms.CharField(
        label=_("Titles"), widget=forms.Textarea(attrs={"rows": 6}), help_text=_("The list: one title per line.")
    )
    note = forms.CharField(
        label=_("Note"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Optional: a few words above the list."),
    )

    def clean_recipients(self) -> list[str]:
        addresses = list(dict.fromkeys(_lines(self.cleaned_data["recipients"])))
        if len(addresses) > MAX_RECIPIENTS:
            raise ValidationError(_("Send to at most %(max)s recipients at a time."), params={"max": MAX_RECIPIENTS})
        for address in addresses:
            validate_printable(address)
            validate_email(address)
        return addresses

    def clean_titles(self) -> list[str]:
        titles = [line.strip() for line in self.cleaned_data["titles"].splitlines() if line.strip()]
        if len(titles) > MAX_TITLES:
            raise ValidationError(_("A list holds at most %(max)s titles."), params={"max": MAX_TITLES})
        for title in titles:
            validate_printable(title)
        return [title[:300] for title in titles]

    def clean_note(self) -> str:
        note = self.cleaned_data["note"].replace("\r\n", "\n").replace("\r", "\n")
        for line in note.split("\n"):
            validate_printable(line.replace("\t", " "))
        return note.strip()


class LogFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("Any status")), *NoticeStatus.choices]
    )
    kind = forms.ChoiceField(label=_("Kind"), required=False, choices=[("", _("Any kind")), *NoticeKind.choices])
    school = forms.ModelChoiceField(
        label=_("School"), required=False, queryset=School.objects.none(), empty_label=_("All")
    )
    since = forms.DateField(
        label=pgettext_lazy("dates", "From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label=pgettext_lazy("dates", "To"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, schools: QuerySet[School], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["school"].queryset = schools  # type: ignore[attr-defined]
