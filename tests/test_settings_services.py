import pytest
from cryptography.fernet import Fernet

from settings_app import crypto
from settings_app.models import SettingsChange, SmtpSettings
from settings_app.services import smtp_settings_clear_password, smtp_settings_save

pytestmark = pytest.mark.django_db

VALUES = {
    "host": "smtp.myschool.edu",
    "port": 587,
    "transport": "tls",
    "username": "library",
    "from_name": "North Library",
    "from_email": "library@myschool.edu",
    "max_per_hour": 500,
}


def save(scope, user, password="", **changes):
    return smtp_settings_save(scope=scope, values={**VALUES, **changes}, password=password, acting_user=user)


def test_the_password_is_stored_as_fernet_ciphertext_not_plaintext(installation, super_admin):
    row, _ = save(installation, super_admin, password="hunter2-secret")
    row.refresh_from_db()
    assert "hunter2-secret" not in row.password_sealed
    assert row.password_sealed.startswith("gAAAA")
    assert row.password() == "hunter2-secret"


def test_a_blank_password_keeps_the_stored_one_when_the_destination_is_unchanged(installation, super_admin):
    save(installation, super_admin, password="hunter2-secret")
    row, cleared = save(installation, super_admin, password="", max_per_hour=100, from_name="Library")
    row.refresh_from_db()
    assert not cleared
    assert row.password() == "hunter2-secret"
    assert row.max_per_hour == 100


@pytest.mark.parametrize(
    "change", [{"host": "smtp.other.org"}, {"port": 2525}, {"transport": "ssl"}, {"username": "someone-else"}]
)
def test_changing_the_destination_without_a_password_clears_the_stored_one(installation, super_admin, change):
    save(installation, super_admin, password="hunter2-secret")
    row, cleared = save(installation, super_admin, **change)
    row.refresh_from_db()
    assert cleared
    assert row.password_sealed == ""
    assert row.password() == ""
    assert SettingsChange.objects.first().summary["Password"] == "cleared (server or user ID changed)"


def test_changing_the_destination_with_a_new_password_seals_it_to_the_new_destination(installation, super_admin):
    save(installation, super_admin, password="old-secret")
    row, cleared = save(installation, super_admin, password="new-secret", host="smtp.other.org")
    row.refresh_from_db()
    assert not cleared
    assert row.password() == "new-secret"


def test_a_sealed_password_cannot_be_opened_for_another_destination(installation, super_admin):
    row, _ = save(installation, super_admin, password="hunter2-secret")
    SmtpSettings.objects.filter(pk=row.pk).update(host="evil.example.org")
    row.refresh_from_db()
    with pytest.raises(crypto.CredentialsUnreadable):
        row.password()


def test_every_change_is_audited_without_secret_values(installation, super_admin):
    save(installation, super_admin, password="hunter2-secret")
    save(installation, super_admin, password="another-secret", port=2525)
    first, second = reversed(SettingsChange.objects.all())
    assert first.changed_by == super_admin
    assert first.summary["Password"] == "set"
    assert first.summary["SMTP (mail) server address"] == "smtp.myschool.edu"
    assert first.summary["Transport protocol"] == "TLS (STARTTLS)"
    assert second.summary == {"Port": "2525", "Password": "changed"}
    assert "secret" not in str(first.summary) + str(second.summary)


def test_saving_unchanged_values_writes_no_audit_row(installation, super_admin):
    save(installation, super_admin)
    save(installation, super_admin)
    assert SettingsChange.objects.count() == 1


def test_clearing_the_password_removes_it_and_is_audited(installation, super_admin):
    save(installation, super_admin, password="hunter2-secret")
    assert smtp_settings_clear_password(scope=installation, acting_user=super_admin)
    row = SmtpSettings.objects.get()
    assert row.password_sealed == ""
    assert SettingsChange.objects.first().summary == {"Password": "cleared"}


def test_moving_the_destination_resets_the_health(installation, super_admin):
    row, _ = save(installation, super_admin)
    SmtpSettings.objects.filter(pk=row.pk).update(last_test_ok=True, last_test_category="ok")
    row, _ = save(installation, super_admin, host="smtp.other.org")
    row.refresh_from_db()
    assert row.last_test_ok is None
    assert row.health == "not_tested"


def test_a_value_sealed_under_an_unknown_key_fails_closed(installation, super_admin, settings):
    row, _ = save(installation, super_admin, password="hunter2-secret")
    settings.SMTP_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.CredentialsUnreadable):
        row.password()
