import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError

from settings_app import crypto
from settings_app.models import SmtpSettings
from tests import factories

pytestmark = pytest.mark.django_db


def test_rotate_re_encrypts_under_the_new_key_so_the_old_key_can_be_removed(installation, settings, capsys):
    old_key = settings.SMTP_ENCRYPTION_KEYS[0]
    row = factories.smtp_settings(installation=installation, password="hunter2-secret")
    before = row.password_sealed
    new_key = Fernet.generate_key().decode()
    settings.SMTP_ENCRYPTION_KEYS = [new_key, old_key]

    call_command("smtp_secrets", "rotate")
    call_command("smtp_secrets", "rotate")  # safe to run twice

    row.refresh_from_db()
    assert row.password_sealed != before
    settings.SMTP_ENCRYPTION_KEYS = [new_key]
    assert row.password() == "hunter2-secret"
    assert "re-encrypted 1 stored secret under the newest key" in capsys.readouterr().out


def test_check_reports_unreadable_rows_and_exits_1(installation, north, settings, capsys):
    factories.smtp_settings(installation=installation, password="consortium-secret")
    settings.SMTP_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    factories.smtp_settings(district=north, password="north-secret")

    with pytest.raises(CommandError) as excinfo:
        call_command("smtp_secrets", "check")

    assert excinfo.value.returncode == 1
    err = capsys.readouterr().err
    assert "SMTP settings of Test Consortium" in err
    assert "North" not in err
    assert "secret" not in err


def test_check_passes_when_every_row_is_readable(installation, capsys):
    factories.smtp_settings(installation=installation, password="hunter2-secret")
    call_command("smtp_secrets", "check")
    assert "1 readable, 0 unreadable" in capsys.readouterr().out


def test_check_reports_a_password_sealed_to_another_destination(installation):
    row = factories.smtp_settings(installation=installation, password="hunter2-secret")
    SmtpSettings.objects.filter(pk=row.pk).update(host="moved.example.org")
    with pytest.raises(CommandError):
        call_command("smtp_secrets", "check")


def test_rotate_leaves_unreadable_rows_alone_and_says_so(installation, settings):
    row = factories.smtp_settings(installation=installation, password="hunter2-secret")
    settings.SMTP_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError):
        call_command("smtp_secrets", "rotate")
    row.refresh_from_db()
    with pytest.raises(crypto.CredentialsUnreadable):
        row.password()


def test_rotate_and_check_cover_the_oauth_client_secret_and_the_accounts_sign_in(installation, settings, capsys):
    old_key = settings.SMTP_ENCRYPTION_KEYS[0]
    row = factories.smtp_settings(
        installation=installation, username="reports@district.org", oauth_provider="microsoft", oauth_client_id="app"
    )
    row.oauth_client_secret_sealed = crypto.seal("client-secret-value", row.oauth_binding)
    row.oauth_refresh_sealed = crypto.seal("refresh-token-value", row.oauth_binding)
    row.save()
    new_key = Fernet.generate_key().decode()
    settings.SMTP_ENCRYPTION_KEYS = [new_key, old_key]

    call_command("smtp_secrets", "rotate")

    settings.SMTP_ENCRYPTION_KEYS = [new_key]  # the old key is gone: what was rotated still opens
    row.refresh_from_db()
    assert (row.oauth_client_secret(), row.oauth_refresh_token()) == ("client-secret-value", "refresh-token-value")
    assert "re-encrypted 2 stored secrets under the newest key" in capsys.readouterr().out
    settings.SMTP_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError):
        call_command("smtp_secrets", "check")
    err = capsys.readouterr().err
    assert "unreadable client secret: " in err and "unreadable account sign-in: " in err
    assert "client-secret-value" not in err and "refresh-token-value" not in err
