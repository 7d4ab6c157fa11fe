"""`manage.py check --deploy` flags an OAuth redirect URL that identity providers cannot send people back to."""

import pytest
from django.core.checks import Tags, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError


def our_warnings() -> dict[str, str]:
    found = run_checks(include_deployment_checks=True, tags=[Tags.security])
    return {message.id: message.msg for message in found if message.id and message.id.startswith("destiny_mail.")}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8000/oauth/callback/", {"destiny_mail.W001", "destiny_mail.W002"}),
        ("https://localhost/oauth/callback/", {"destiny_mail.W001"}),
        ("https://[::1]:8443/oauth/callback/", {"destiny_mail.W001"}),
        ("http://mail.example.org/oauth/callback/", {"destiny_mail.W002"}),
        ("https://mail.example.org/callback/", {"destiny_mail.W003"}),
        ("https://mail.example.org/oauth/callback/", set()),
    ],
)
def test_the_deployment_check_flags_a_loopback_plain_http_or_wrong_redirect_url(settings, url, expected):
    settings.OAUTH_REDIRECT_URL = url
    warnings = our_warnings()
    assert set(warnings) == expected
    assert all(url in text for text in warnings.values())


def test_the_default_redirect_url_fails_check_deploy_at_warning_level(settings):
    settings.OAUTH_REDIRECT_URL = "http://127.0.0.1:8000/oauth/callback/"
    with pytest.raises(SystemCheckError, match=r"destiny_mail\.W001"):
        call_command("check", deploy=True, fail_level="WARNING", tags=["security"])


def test_the_plain_check_without_deploy_leaves_the_development_default_alone(settings):
    settings.OAUTH_REDIRECT_URL = "http://127.0.0.1:8000/oauth/callback/"
    assert not [m for m in run_checks(tags=[Tags.security]) if str(m.id).startswith("destiny_mail.")]
