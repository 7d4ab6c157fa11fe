"""Test data: the installation, districts, schools, users with roles, settings rows."""

import itertools

from django.contrib.auth.models import User

from settings_app import crypto
from settings_app.models import District, HostingMode, Installation, Role, RoleKind, School, SmtpSettings

_seq = itertools.count(1)


def installation(**fields) -> Installation:
    fields.setdefault("name", "Test Consortium")
    fields.setdefault("hosting_mode", HostingMode.SELF_HOSTED)
    fields.setdefault("allowed_networks", "127.0.0.0/8")
    obj, _ = Installation.objects.update_or_create(id=1, defaults=fields)
    return obj


def district(name: str | None = None, **fields) -> District:
    name = name or f"District {next(_seq)}"
    fields.setdefault(
        "installation", Installation.objects.get(id=1) if Installation.objects.exists() else installation()
    )
    fields.setdefault("slug", name.lower().replace(" ", "-"))
    return District.objects.create(name=name, **fields)


def school(district_obj: District, name: str | None = None) -> School:
    name = name or f"School {next(_seq)}"
    return School.objects.create(district=district_obj, name=name, slug=name.lower().replace(" ", "-"))


def user(username: str | None = None, **fields) -> User:
    username = username or f"user{next(_seq)}"
    fields.setdefault("email", f"{username}@example.org")
    return User.objects.create_user(username=username, password="pw", **fields)


def role(user_obj: User, kind: RoleKind, *, district: District | None = None, school: School | None = None) -> Role:
    return Role.objects.create(user=user_obj, kind=kind, district=district, school=school)


def smtp_settings(*, password: str = "", **fields) -> SmtpSettings:
    """A settings row for `installation=` or `district=`; `password` is sealed to its destination."""
    fields.setdefault("host", "localhost")
    fields.setdefault("port", 2525)
    fields.setdefault("transport", "none")
    row = SmtpSettings(**fields)
    if password:
        row.password_sealed = crypto.seal(password, row.destination)
    row.save()
    return row
