import email
import email.policy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from settings_app.forms import SmtpSettingsForm
from settings_app.mail.message import build_message, format_address, new_message_id
from settings_app.models import HostingMode, SmtpSettings
from tests import factories

# The form validates the model's constraints, which Django checks with a query.
pytestmark = pytest.mark.django_db

VALID = {
    "smtp-host": "smtp.myschool.edu",
    "smtp-port": "587",
    "smtp-transport": "tls",
    "smtp-username": "library",
    "smtp-password": "",
    "smtp-from_name": "North Library",
    "smtp-from_email": "library@myschool.edu",
    "smtp-max_per_hour": "500",
}


def make_form(hosting_mode=HostingMode.HOSTED, **changes):
    installation = factories.installation(hosting_mode=hosting_mode)
    data = {**VALID, **{f"smtp-{k}": v for k, v in changes.items()}}
    return SmtpSettingsForm(
        data, instance=SmtpSettings(installation=installation), installation=installation, prefix="smtp"
    )


def test_valid_settings_are_accepted():
    form = make_form()
    assert form.is_valid(), form.errors
    assert form.cleaned_data["host"] == "smtp.myschool.edu"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("SMTP.MySchool.EDU.", "smtp.myschool.edu"),
        ("  smtp.myschool.edu  ", "smtp.myschool.edu"),
        ("mail.bücherei.de", "mail.xn--bcherei-n2a.de"),
    ],
)
def test_host_is_normalised(typed, stored):
    form = make_form(host=typed)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["host"] == stored


@pytest.mark.parametrize(
    "host",
    [
        "smtp://smtp.myschool.edu",
        "smtp.myschool.edu:25",
        "smtp.myschool.edu/path",
        "user@smtp.myschool.edu",
        "smtp myschool.edu",
        "smtp.myschool.edu\r\nRCPT TO:<x@y>",
        "smtp.myschool.edu\x00",
        "-bad-.example.org",
        "127.1",
        "2130706433",
        "0x7f.1",
        "localhost",
        "192.168.1.10",
        "::1",
    ],
)
def test_hosted_installation_refuses_hosts_that_are_not_plain_fqdns(host):
    form = make_form(host=host)
    assert not form.is_valid()
    assert "host" in form.errors


def test_self_hosted_installation_accepts_an_ip_address_and_recommends_a_name():
    form = make_form(HostingMode.SELF_HOSTED, host="192.168.1.10")
    assert form.is_valid(), form.errors
    assert "recommended" in form.fields["host"].help_text


def test_hosted_ip_error_says_why():
    form = make_form(host="10.0.0.5")
    form.is_valid()
    assert form.errors["host"] == ["Hosted installations need a fully qualified domain name, not an IP address."]


@pytest.mark.parametrize(("port", "expected"), [("", 587), ("2525", 2525)])
def test_blank_port_takes_the_transports_usual_port(port, expected):
    form = make_form(port=port)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["port"] == expected


@pytest.mark.parametrize("port", ["0", "65536", "-1", "abc"])
def test_port_out_of_range_is_refused(port):
    form = make_form(port=port)
    assert not form.is_valid()
    assert "port" in form.errors


@pytest.mark.parametrize(
    ("changes", "missing"),
    [({"from_name": ""}, "from_name"), ({"from_email": ""}, "from_email")],
)
def test_display_name_and_email_go_together(changes, missing):
    form = make_form(**changes)
    assert not form.is_valid()
    assert list(form.errors) == [missing]
    assert form.errors[missing][0].startswith("Enter this too")


def test_both_sender_fields_may_be_blank():
    assert make_form(from_name="", from_email="").is_valid()


@pytest.mark.parametrize(
    "name",
    [
        "Library\r\nBcc: victim@example.org",
        "Library\nX: y",
        "Library\x00",
        "Library\u2028Bcc: v@example.org",
        "Library\u2029Bcc: v@example.org",
        "Lib\u0085rary",
        "Library\u200b",
        "IT Dept <boss@district.org>",
        'Quoted "name"',
        "someone@district.org",
    ],
)
def test_display_name_with_control_characters_or_address_syntax_is_refused(name):
    form = make_form(from_name=name)
    assert not form.is_valid()
    assert "from_name" in form.errors


@pytest.mark.parametrize(
    "addr",
    ["library@myschool.edu\r\nBcc: v@example.org", "library\u2028@myschool.edu", "not-an-email", "a@b@c.org"],
)
def test_malformed_or_injected_from_email_is_refused(addr):
    form = make_form(from_email=addr)
    assert not form.is_valid()
    assert "from_email" in form.errors


@pytest.mark.parametrize("username", ["library\r\nMAIL FROM:<x@y>", "library\x00", "lib\u2028rary"])
def test_username_with_control_characters_is_refused(username):
    form = make_form(username=username)
    assert not form.is_valid()
    assert "username" in form.errors


def test_password_is_kept_exactly_as_typed():
    form = make_form(password="  spaced pass  ")
    assert form.is_valid()
    assert form.cleaned_data["password"] == "  spaced pass  "


def test_password_input_never_renders_a_value():
    form = make_form(password="typed-secret")
    form.is_valid()
    assert "typed-secret" not in str(form["password"])


@settings(
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    deadline=None,
)
@given(
    name=st.text(max_size=60),
    local=st.one_of(st.from_regex(r"\A[a-z0-9][a-z0-9._+-]{0,10}\Z"), st.text(max_size=20)),
    domain=st.sampled_from(["myschool.edu", "bücherei.de"]),
)
def test_no_accepted_sender_can_break_a_message_or_add_a_header(name, local, domain):
    form = make_form(from_name=name, from_email=f"{local}@{domain}")
    if not form.is_valid():
        return
    sender = format_address(form.cleaned_data["from_name"], form.cleaned_data["from_email"])
    message = build_message(
        sender=sender,
        reply_to=sender,
        to=["p@example.org"],
        subject="Overdue",
        text="t",
        message_id=new_message_id("x.org"),
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert sorted(parsed.keys()) == sorted(message.keys())
    assert len(parsed.get_all("From") or []) == 1
    (address,) = parsed["From"].addresses
    assert address.display_name == form.cleaned_data["from_name"]


def test_a_hosted_installation_never_logs_in_over_plain_text():
    form = make_form(transport="none", port="25", username="library")
    assert not form.is_valid()
    assert form.errors["transport"][0].startswith("Choose SSL or TLS")
    assert make_form(HostingMode.SELF_HOSTED, transport="none", port="25", username="library").is_valid()


def test_the_installation_name_cannot_break_a_test_email_subject():
    from settings_app.forms import InstallationForm

    form = InstallationForm(
        {"name": "North\nBcc: x@example.org", "hosting_mode": "hosted"}, instance=factories.installation()
    )
    assert not form.is_valid()
    assert "name" in form.errors
