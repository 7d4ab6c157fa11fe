"""Input of the notice pages and the delivery log. Forms validate; services write."""

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import QuerySet

from settings_app.forms import clean_sender_pair, validate_display_name, validate_printable
from settings_app.models import NoticeKind, NoticeStatus, School

MAX_RECIPIENTS = 50
MAX_TITLES = 100


class SenderForm(forms.Form):
    """The seed's option: whoever sends may give their own display name and email (both or neither)."""

    sender_name = forms.CharField(
        label="Your display name", required=False, max_length=100, validators=[validate_display_name]
    )
    sender_email = forms.EmailField(label="Your email", required=False, validators=[validate_printable])

    def __init__(self, *args, default_sender: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        hint = f"Leave both blank to send as {default_sender}." if default_sender else ""
        self.fields["sender_name"].help_text = f"Shown as the sender; replies come back to your email. {hint}"
        self.fields["sender_email"].help_text = "Optional, but if the name is set this must be too."

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
        label="Recipients",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text=f"Email addresses, one per line (up to {MAX_RECIPIENTS}).",
    )
    titles = forms.CharField(
        label="Titles", widget=forms.Textarea(attrs={"rows": 6}), help_text="The list: one title per line."
    )
    note = forms.CharField(
        label="Note",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Optional: a few words above the list.",
    )

    def clean_recipients(self) -> list[str]:
        addresses = list(dict.fromkeys(_lines(self.cleaned_data["recipients"])))
        if len(addresses) > MAX_RECIPIENTS:
            raise ValidationError("Send to at most %(max)s recipients at a time.", params={"max": MAX_RECIPIENTS})
        for address in addresses:
            validate_printable(address)
            validate_email(address)
        return addresses

    def clean_titles(self) -> list[str]:
        titles = [line.strip() for line in self.cleaned_data["titles"].splitlines() if line.strip()]
        if len(titles) > MAX_TITLES:
            raise ValidationError("A list holds at most %(max)s titles.", params={"max": MAX_TITLES})
        for title in titles:
            validate_printable(title)
        return [title[:300] for title in titles]

    def clean_note(self) -> str:
        note = self.cleaned_data["note"].replace("\r\n", "\n").replace("\r", "\n")
        for line in note.split("\n"):
            validate_printable(line.replace("\t", " "))
        return note.strip()


class LogFilterForm(forms.Form):
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Any status"), *NoticeStatus.choices])
    kind = forms.ChoiceField(label="Kind", required=False, choices=[("", "Any kind"), *NoticeKind.choices])
    school = forms.ModelChoiceField(label="School", required=False, queryset=School.objects.none(), empty_label="All")
    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, schools: QuerySet[School], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["school"].queryset = schools  # type: ignore[attr-defined]
