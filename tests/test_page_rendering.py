"""How the pages render: the same HTML as Django's own form templates, and a fixed number of queries per page."""

import pytest
from django.contrib.auth.forms import AuthenticationForm
from django.forms.renderers import DjangoTemplates
from django.urls import reverse

from settings_app import forms
from settings_app.delivery.forms import LogFilterForm, ResourceListForm
from settings_app.forms import InstallationForm, MailSourceForm, SmtpSettingsForm, WidgetRenderer
from settings_app.models import MailSource, RoleKind, School
from tests import factories


def every_form(installation, row):
    """Each form of the pages, unbound and bound to values that fail validation."""
    yield SmtpSettingsForm(instance=row, installation=installation, prefix="smtp")
    yield SmtpSettingsForm(
        {"smtp-host": 'smtp.<b>"x"', "smtp-port": "x", "smtp-from_name": "A & B"},
        instance=row,
        installation=installation,
        prefix="smtp",
    )
    yield MailSourceForm(initial={"mail_source": MailSource.OWN}, consortium_available=True)
    yield MailSourceForm({"mail_source": "nonsense"}, consortium_available=False)
    yield InstallationForm(instance=installation)
    yield InstallationForm({"name": "", "hosting_mode": "hosted", "allowed_networks": "10.0.0.0/8"})
    yield forms.TestEmailForm(prefix="test", initial={"send_to": "me@example.org"})
    yield LogFilterForm(None, schools=School.objects.all())
    yield LogFilterForm({"status": "failed", "school": "0", "since": "not a date"}, schools=School.objects.all())
    yield ResourceListForm({"recipients": "a@example.org\n<b>", "titles": "One"}, default_sender="Lib <l@x.org>")
    yield AuthenticationForm()


@pytest.mark.django_db
def test_widgets_and_labels_render_as_djangos_own_templates_would(installation, north):
    row = factories.smtp_settings(installation=installation, host="smtp.example.org", username="u<ser>")
    for ours, djangos in zip(every_form(installation, row), every_form(installation, row), strict=True):
        ours.renderer, djangos.renderer = WidgetRenderer(), DjangoTemplates()
        for name in ours.fields:
            if ours.is_bound:
                ours.is_valid(), djangos.is_valid()
            for render in (str, lambda field: field.label_tag(), lambda field: field.legend_tag()):
                assert render(ours[name]) == render(djangos[name]), f"{type(ours).__name__}.{name}"


@pytest.mark.django_db
def test_a_field_group_ties_its_help_text_and_errors_to_the_control(installation):
    form = SmtpSettingsForm({"smtp-host": "smtp.<b>"}, installation=installation, prefix="smtp")
    form.is_valid()

    group = form["host"].as_field_group()

    assert '<div class="field has-error" id="field-host">' in group
    assert 'aria-describedby="id_smtp-host_helptext id_smtp-host_error"' in group
    assert 'aria-invalid="true"' in group
    assert '<p class="help" id="id_smtp-host_helptext">' in group
    assert '<ul class="errorlist" id="id_smtp-host_error"><li>' in group
    assert "<b>" not in group


@pytest.mark.django_db
def test_the_preset_list_marks_the_chosen_provider_and_only_it(client, installation, super_admin):
    client.force_login(super_admin)
    url = reverse("installation_options")

    chosen = client.get(url, {"preset": "gmail"}).content.decode()
    plain = client.get(url).content.decode()

    assert chosen.count(" selected>") - plain.count(" selected>") == 1
    assert '<option value="gmail" data-host="smtp.gmail.com"' in plain
    assert 'data-caveat="' in chosen and "Gmail" in chosen


@pytest.fixture
def busy_installation(installation, super_admin):
    """Many districts, schools and settings changes: a page must not read more often for more of them."""
    factories.smtp_settings(installation=installation, host="smtp.consortium.example.org")
    for number in range(6):
        district = factories.district(f"District {number}", mail_source=MailSource.OWN if number % 2 else "consortium")
        factories.school(district)
        if number % 2:
            factories.smtp_settings(district=district, host=f"smtp.d{number}.example.org")
    return installation


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("page", "queries"),
    [
        # session, user, roles, installation, its settings, history; the district list: the consortium's
        # settings, the districts with theirs
        ("installation_options", 8),
        # session, user, roles, district, its settings and the consortium's, history
        ("district_options", 6),
    ],
)
def test_the_settings_pages_read_the_database_a_fixed_number_of_times(
    client, django_assert_num_queries, busy_installation, super_admin, page, queries
):
    district = factories.district("Measured", mail_source=MailSource.OWN)
    factories.smtp_settings(district=district, host="smtp.measured.example.org")
    client.force_login(super_admin)
    url = reverse(page, kwargs={"slug": district.slug} if page == "district_options" else {})

    with django_assert_num_queries(queries):
        assert client.get(url).status_code == 200


@pytest.mark.django_db
def test_library_staff_see_their_schools_in_the_menu(client, north):
    staff = factories.user("staff")
    school = north.schools.get()
    factories.role(staff, RoleKind.LIBRARY_STAFF, school=school)
    client.force_login(staff)

    html = client.get(reverse("school_notices", kwargs={"slug": school.slug})).content.decode()

    assert f"Notices: {school.name}" in html
    assert "Setup" not in html.split("</nav>")[0]
