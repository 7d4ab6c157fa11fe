"""Input shaping and validation for the settings pages. Forms validate; services write."""

import html
import ipaddress
import re
import unicodedata
from typing import Any, cast

from cryptography import x509
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.forms.boundfield import BoundField
from django.forms.renderers import DjangoTemplates
from django.http import HttpRequest
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from settings_app.mail.config import Transport
from settings_app.mail.message import check_sender
from settings_app.models import HostingMode, Installation, MailSource, SmtpSettings
from settings_app.oauth.providers import AuthMethod, Flow, Provider
from settings_app.oauth.tokens import service_account_key

# Control, format, separator, surrogate and unassigned characters: none belongs in a header or a host name.
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# A Microsoft Entra directory: its ID (a GUID) or one of its domain names, or organizations / common.
TENANT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_NAME_FORBIDDEN = set('<>"@')


def validate_printable(value: str) -> None:
    """Refuse CR, LF, NUL, U+2028/2029/0085 and every other control or invisible format character."""
    bad = sorted({ch for ch in value if unicodedata.category(ch) in _FORBIDDEN_CATEGORIES})
    if bad:
        raise ValidationError(
            _("Remove the control or invisible characters (%(chars)s)."),
            code="control_characters",
            params={"chars": ", ".join(f"U+{ord(ch):04X}" for ch in bad)},
        )


def validate_display_name(value: str) -> None:
    validate_printable(value)
    if _NAME_FORBIDDEN & set(value):
        raise ValidationError(_('A display name cannot contain < > " or @.'), code="name_characters")


def normalise_host(value: str, *, hosted: bool) -> str:
    """The server address as an IDNA, lower-case name without trailing dot, or a canonical IP (self-hosted)."""
    validate_printable(value)
    value = value.strip()
    if "://" in value or re.search(r"[\s/\\@]", value):
        raise ValidationError(
            _("Enter only the server's name (for example smtp.myschool.edu): no scheme, path, user or spaces."),
            code="host_syntax",
        )
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return _normalise_name(value, hosted=hosted)
    if hosted:
        raise ValidationError(
            _("Hosted installations need a fully qualified domain name, not an IP address."), code="host_ip"
        )
    return str(address)


def _normalise_name(value: str, *, hosted: bool) -> str:
    if ":" in value:
        raise ValidationError(_("Enter the port in the Port field, not after the server name."), code="host_port")
    try:
        name = value.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValidationError(_("This is not a valid server name."), code="host_syntax") from exc
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValidationError(_("This is not a valid server name."), code="host_syntax")
    if labels[-1].isdigit() or labels[-1].startswith("0x"):
        raise ValidationError(
            _("This looks like a numeric address. Use the server's name, or its address in dotted form."),
            code="host_numeric",
        )
    if hosted and len(labels) < 2:
        raise ValidationError(
            _("Enter a fully qualified domain name, for example smtp.myschool.edu."), code="host_not_fqdn"
        )
    return name


class SmtpSettingsForm(forms.ModelForm):
    password = forms.CharField(
        label=_("Authentication password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_(
            "Leave blank to keep the stored password. Changing the server, port, transport or user ID "
            "requires typing it again."
        ),
    )

    class Meta:
        model = SmtpSettings
        fields = ["host", "port", "transport", "username", "password", "from_name", "from_email", "max_per_hour"]
        widgets = {
            "host": forms.TextInput(
                attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "smtp.myschool.edu"}
            ),
            "port": forms.NumberInput(attrs={"min": 1, "max": 65535}),
            "username": forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
            "from_email": forms.EmailInput(attrs={"placeholder": "library@myschool.edu"}),
        }
        help_texts = {
            "port": _("Plain: 25. SSL: 465. TLS: 587 (or 25). Left blank, the transport's usual port is used."),
            "transport": _(
                "None sends in plain text. SSL encrypts from the first byte (implicit TLS). "
                "TLS starts plain and upgrades with STARTTLS; it never falls back to plain text."
            ),
            "username": _("Only if the mail server requires authentication."),
            "from_name": _(
                "Optional, but if the email is set this must be too. Staff may enter their own when sending."
            ),
            "from_email": _(
                "Some mail servers reject messages without a return address. Optional, paired with the display name."
            ),
            "max_per_hour": _("Notices beyond this wait for the next hour; test emails count too."),
        }

    def __init__(self, *args, installation: Installation, **kwargs):
        super().__init__(*args, **kwargs)
        self.installation = installation
        self.fields["port"].required = False
        self.fields["host"].help_text = (
            _(
                "Hosted installations: a fully qualified domain name (for example smtp.myschool.edu), never an IP "
                "address."
            )
            if installation.hosted
            else _(
                "An IP address is accepted, but a fully qualified domain name (for example smtp.myschool.edu) is "
                "recommended."
            )
        )

    def clean_host(self) -> str:
        return normalise_host(self.cleaned_data["host"], hosted=self.installation.hosted)

    def clean_username(self) -> str:
        validate_printable(self.cleaned_data["username"])
        return self.cleaned_data["username"].strip()

    def clean_from_name(self) -> str:
        validate_display_name(self.cleaned_data["from_name"])
        return self.cleaned_data["from_name"].strip()

    def clean_from_email(self) -> str:
        validate_printable(self.cleaned_data["from_email"])
        return self.cleaned_data["from_email"]

    def clean(self) -> dict[str, Any]:
        cleaned = self.cleaned_data
        if cleaned.get("port") is None and cleaned.get("transport"):
            cleaned["port"] = Transport(cleaned["transport"]).default_port
        clean_sender_pair(self, "from_name", "from_email")
        if self.installation.hosted and cleaned.get("username") and cleaned.get("transport") == Transport.NONE:
            self.add_error(
                "transport",
                ValidationError(
                    _(
                        "Choose SSL or TLS: a hosted installation never sends a password over an unencrypted "
                        "connection."
                    ),
                    code="plain_auth",
                ),
            )
        return cleaned


def clean_sender_pair(form: forms.BaseForm, name_field: str, email_field: str) -> None:
    """The pair rule (both or neither), then a real message built from the pair must come out intact."""
    if name_field in form.errors or email_field in form.errors:
        return
    name, addr = form.cleaned_data.get(name_field, ""), form.cleaned_data.get(email_field, "")
    if bool(name) != bool(addr):
        missing, present = (name_field, email_field) if addr else (email_field, name_field)
        form.add_error(
            missing,
            ValidationError(
                _("Enter this too: %(present)s is set, and the two go together."),
                code="pair",
                params={"present": form.fields[present].label},
            ),
        )
        return
    if name:
        try:
            check_sender(name, addr, domain=settings.SMTP_EHLO_NAME)
        except ValueError as exc:
            form.add_error(
                name_field, ValidationError(_("This name and email cannot form a valid sender."), code="sender")
            )
            form.add_error(email_field, ValidationError(str(exc), code="sender"))


class MailSourceForm(forms.Form):
    mail_source = forms.ChoiceField(label=_("Mail server"), choices=MailSource.choices, widget=forms.RadioSelect)

    def __init__(self, *args, consortium_available: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not consortium_available:
            field = cast(forms.ChoiceField, self.fields["mail_source"])
            field.choices = [(MailSource.OWN, MailSource.OWN.label)]
            field.help_text = _("The consortium has no mail server set up, so districts use their own.")


class InstallationForm(forms.ModelForm):
    class Meta:
        model = Installation
        fields = ["name", "hosting_mode", "ehlo_name", "divert_all_to", "allowed_networks", "ca_bundle", "oauth_issuer"]
        widgets = {
            "allowed_networks": forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
            "ca_bundle": forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        }

    def clean_name(self) -> str:
        validate_printable(self.cleaned_data["name"])
        return self.cleaned_data["name"].strip()

    def clean_ehlo_name(self) -> str:
        value = self.cleaned_data["ehlo_name"]
        return normalise_host(value, hosted=True) if value else ""

    def clean_allowed_networks(self) -> str:
        lines = self.cleaned_data["allowed_networks"].split()
        try:
            networks = [ipaddress.ip_network(line) for line in lines]
        except ValueError as exc:
            raise ValidationError(
                _("Enter networks in CIDR form, one per line: %(error)s"), params={"error": exc}
            ) from exc
        return "\n".join(str(network) for network in networks)

    def clean_ca_bundle(self) -> str:
        pem = self.cleaned_data["ca_bundle"].strip()
        if pem:
            try:
                x509.load_pem_x509_certificates(pem.encode())
            except ValueError as exc:
                raise ValidationError(_("Paste one or more PEM certificates (-----BEGIN CERTIFICATE-----).")) from exc
        return pem

    def clean(self) -> dict[str, Any]:
        cleaned = self.cleaned_data
        if cleaned.get("hosting_mode") == HostingMode.HOSTED and (
            cleaned.get("allowed_networks") or cleaned.get("ca_bundle")
        ):
            self.add_error(
                "hosting_mode",
                ValidationError(
                    _("Private networks and a private CA are for self-hosted installations only."), code="hosted"
                ),
            )
        if cleaned.get("hosting_mode") == HostingMode.HOSTED and cleaned.get("oauth_issuer"):
            self.add_error(
                "oauth_issuer",
                ValidationError(
                    _("An identity provider of your own is for self-hosted installations only."),
                    code="hosted",
                ),
            )
        elif cleaned.get("oauth_issuer", "").startswith("http://"):
            self.add_error("oauth_issuer", ValidationError(_("Enter an https:// address."), code="https"))
        return cleaned


class OAuthSettingsForm(forms.ModelForm):
    """How the mail account signs in, and the OAuth app registration (the client secret is write-only)."""

    client_secret = forms.CharField(
        label=_("Client secret"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("Leave blank to keep the stored secret. Not needed by Google for installed apps' user consent."),
    )

    class Meta:
        model = SmtpSettings
        fields = [
            "auth_method",
            "oauth_provider",
            "oauth_flow",
            "oauth_client_id",
            "oauth_tenant",
            "client_secret",
            "oauth_client_secret_expires",
        ]
        widgets = {
            "auth_method": forms.RadioSelect,
            "oauth_client_id": forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
            "oauth_tenant": forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
            "oauth_client_secret_expires": forms.DateInput(attrs={"type": "date"}),
        }
        help_texts = {
            "oauth_provider": _("Where the mail account signs in."),
            "oauth_flow": _(
                "Microsoft 365: app-only sign-in (SMTP.SendAsApp) is recommended: no one signs in and it survives "
                "password resets. Google Workspace: the account signs in, or a service account with domain-wide "
                "delegation acts for the mailbox."
            ),
            "oauth_client_id": _("The application (client) ID of the app registration."),
            "oauth_tenant": _("Microsoft 365 only: the directory (tenant) ID or domain, for example district.org."),
            "oauth_client_secret_expires": _("Optional: the page warns you 30 days before it expires."),
        }

    def __init__(self, *args: Any, installation: Installation, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.installation = installation
        choices = [(value, label) for value, label in Provider.choices if self._offered(value)]
        provider = cast(forms.ChoiceField, self.fields["oauth_provider"])
        provider.choices = [("", _("Choose the identity provider…")), *choices]

    def _offered(self, provider: str) -> bool:
        return provider != Provider.INSTALLATION or bool(
            self.installation.oauth_issuer and not self.installation.hosted
        )

    def clean_oauth_client_id(self) -> str:
        validate_printable(self.cleaned_data["oauth_client_id"])
        return self.cleaned_data["oauth_client_id"].strip()

    def clean_oauth_tenant(self) -> str:
        tenant = self.cleaned_data["oauth_tenant"].strip()
        # It becomes part of Microsoft's sign-in and token URLs: a directory ID or a domain name, nothing else.
        if tenant and not TENANT.fullmatch(tenant):
            raise ValidationError(
                _("Enter the directory (tenant) ID or a domain name, for example district.org."), code="tenant_format"
            )
        return tenant

    def clean(self) -> dict[str, Any]:
        cleaned = self.cleaned_data
        if cleaned.get("auth_method") != AuthMethod.OAUTH:
            return cleaned
        if not self.instance.username:
            self.add_error(
                "auth_method",
                ValidationError(
                    _("Enter the user ID (the mailbox address) in the SMTP settings and save them first."),
                    code="username",
                ),
            )
        if cleaned.get("oauth_flow") == Flow.SERVICE_ACCOUNT:
            self._clean_service_account(cleaned)
        for field in ("oauth_provider", "oauth_client_id"):
            if not cleaned.get(field) and field not in self.errors:
                self.add_error(field, ValidationError(_("Required to sign in with OAuth 2.0."), code="required"))
        app_only = cleaned.get("oauth_flow") == Flow.APP_ONLY
        if app_only and cleaned.get("oauth_provider") == Provider.GOOGLE:
            self.add_error(
                "oauth_flow",
                ValidationError(
                    _("Google has no app-only sign-in for SMTP: choose the account signs in."), code="flow"
                ),
            )
        if app_only and cleaned.get("oauth_provider") == Provider.MICROSOFT and not cleaned.get("oauth_tenant"):
            self.add_error(
                "oauth_tenant",
                ValidationError(_("App-only sign-in needs the tenant ID or domain."), code="tenant"),
            )
        return cleaned

    def _clean_service_account(self, cleaned: dict[str, Any]) -> None:
        """A Google service account: its JSON key goes in the client secret field and names the client ID."""
        if cleaned.get("oauth_provider") == Provider.MICROSOFT:
            self.add_error(
                "oauth_flow",
                ValidationError(_("Service accounts are Google Workspace's."), code="flow"),
            )
            return
        if not cleaned.get("client_secret"):
            if not self.instance.has_client_secret:
                self.add_error(
                    "client_secret",
                    ValidationError(_("Paste the service account's JSON key."), code="required"),
                )
            return
        try:
            key = service_account_key(cleaned["client_secret"])
        except ValueError as exc:
            self.add_error("client_secret", ValidationError(str(exc), code="service_account"))
            return
        cleaned["oauth_client_id"] = key["client_email"]
        self.errors.pop("oauth_client_id", None)


class TestEmailForm(forms.Form):
    send_to = forms.EmailField(label=_("Send the test email to"), validators=[validate_email])


# Rendering. Django builds each widget and label from templates, which costs most of these pages' time; the widgets
# and labels below are written out directly instead, as the same HTML as Django's own templates
# (django/forms/templates/django/forms/), and each field as one group (label, control, help, errors).


def _esc(value: object) -> str:
    """Django's conditional_escape, without its lazy-string wrapper."""
    return value.__html__() if hasattr(value, "__html__") else html.escape(str(value))


def _attrs(attrs: dict) -> str:
    return "".join(
        f" {_esc(name)}" if value is True else f' {_esc(name)}="{_esc(value)}"'
        for name, value in attrs.items()
        if value is not False
    )


def _input(context: dict) -> str:
    widget = context["widget"]
    value = "" if widget["value"] is None else f' value="{_esc(widget["value"])}"'
    return f'<input type="{_esc(widget["type"])}" name="{_esc(widget["name"])}"{value}{_attrs(widget["attrs"])}>\n'


def _option(widget: dict) -> str:
    return f'<option value="{_esc(widget["value"])}"{_attrs(widget["attrs"])}>{_esc(widget["label"])}</option>\n'


def _choice(widget: dict) -> str:
    if not widget["wrap_label"]:
        return _input({"widget": widget}) + "\n\n"
    target = f' for="{_esc(widget["attrs"]["id"])}"' if widget["attrs"].get("id") else ""
    return f"<label{target}>{_input({'widget': widget})} {_esc(widget['label'])}</label>\n\n"


def _select(context: dict) -> str:
    widget = context["widget"]
    out = f'<select name="{_esc(widget["name"])}"{_attrs(widget["attrs"])}>'
    for group, options, _index in widget["optgroups"]:
        out += f'\n  <optgroup label="{_esc(group)}">' if group else ""
        out += "".join(f"\n  {_option(option)}" for option in options)
        out += "\n  </optgroup>" if group else ""
    return out + "\n</select>"


def _radio(context: dict) -> str:
    widget = context["widget"]
    id_, css = widget["attrs"].get("id"), widget["attrs"].get("class")
    out = "<div" + (f' id="{_esc(id_)}"' if id_ else "") + (f' class="{_esc(css)}"' if css else "") + ">"
    for group, options, _index in widget["optgroups"]:
        out += f"\n  <div><label>{_esc(group)}</label>" if group else ""
        out += "".join(f"<div>\n    {_choice(option)}</div>" for option in options)
        out += "\n  </div>" if group else ""
    return out + "\n</div>"


def _textarea(context: dict) -> str:
    widget = context["widget"]
    value = _esc(widget["value"]) if widget["value"] else ""
    return f'<textarea name="{_esc(widget["name"])}"{_attrs(widget["attrs"])}>\n{value}</textarea>'


def _label(context: dict) -> str:
    if not context["use_tag"]:
        return _esc(context["label"])
    tag = _esc(context["tag"])
    return f"<{tag}{_attrs(context['attrs'])}>{_esc(context['label'])}</{tag}>"


_INPUTS = ("text", "number", "email", "password", "date", "hidden", "checkbox", "url")
_WRITTEN = {
    **{f"django/forms/widgets/{kind}.html": _input for kind in _INPUTS},
    "django/forms/widgets/select.html": _select,
    "django/forms/widgets/radio.html": _radio,
    "django/forms/widgets/textarea.html": _textarea,
    "django/forms/label.html": _label,
}


class FieldGroup(BoundField):
    """A field as every page shows it: label, control, help text and errors, the last two tied to the control by
    their ids (Django adds aria-describedby and aria-invalid to the control)."""

    def as_field_group(self) -> SafeString:
        kind, label = self.widget_type, _esc(self.label)
        if kind == "checkbox":
            control = f'<label class="check">{self} {label}</label>'
        elif kind == "radioselect":
            control = f"<fieldset><legend>{label}</legend>{self}</fieldset>"
        else:
            control = f"{self.label_tag()}\n  {self}"
        id_ = _esc(self.auto_id)
        help_text = f'\n  <p class="help" id="{id_}_helptext">{_esc(self.help_text)}</p>' if self.help_text else ""
        errors = "".join(f"<li>{_esc(error)}</li>" for error in self.errors)
        if errors:
            errors = f'\n  <ul class="errorlist" id="{id_}_error">{errors}</ul>'
        css = "field has-error" if self.errors else "field"
        html = f'<div class="{css}" id="field-{self.name}">\n  {control}{help_text}{errors}\n</div>'
        return mark_safe(html)  # noqa: S308 - every value in it is escaped above


class WidgetRenderer(DjangoTemplates):
    """The project's form renderer (settings.FORM_RENDERER): fields render as FieldGroup, the widgets and labels
    above directly, anything else through Django's templates."""

    bound_field_class = FieldGroup

    def render(self, template_name: str, context: dict, request: HttpRequest | None = None) -> str:
        write = _WRITTEN.get(template_name)
        return write(context).strip() if write else super().render(template_name, context, request)
