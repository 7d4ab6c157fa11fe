"""Who may see and change what. Roles are read on every request, so a removed role takes effect at once.

Access helpers raise Http404 for a scope the user may not see, so ids of other scopes reveal nothing.
"""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.auth.models import User as AuthUser
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404

from settings_app import selectors
from settings_app.models import District, Installation, Role, RoleKind, School

User = AbstractBaseUser | AnonymousUser


class AuthenticatedRequest(HttpRequest):
    """Every view but login sits behind LoginRequiredMiddleware, so its user is a real account."""

    user: AuthUser  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Roles:
    super_admin: bool = False
    districts: frozenset[int] = frozenset()  # administered (Destiny Administrator)
    schools: frozenset[int] = frozenset()  # worked at (Library staff)


# Each request loads its own user: what a request read once is kept on it.
_READ = "_roles_read_this_request"
_VERSION = "_data_version_this_request"


def request_version(user: User) -> str:
    """The selectors.data_version this request started under, read once: only for what the request reads before it
    writes anything (access checks, a plain view of a page)."""
    found = getattr(user, _VERSION, None)
    if found is None:
        found = selectors.data_version()
        setattr(user, _VERSION, found)
    return found


def roles(user: User) -> Roles:
    """The user's roles as the database holds them now: read (or taken from what this process kept under the same
    data version) once per request."""
    if not user.is_authenticated or not user.is_active:
        return Roles()
    found = getattr(user, _READ, None)
    if found is None:
        found = selectors.kept(request_version(user), f"roles:{user.pk}", lambda: _read_roles(user.pk))
        setattr(user, _READ, found)
    return found


def _read_roles(user_id: int) -> Roles:
    rows = list(Role.objects.filter(user_id=user_id).values_list("kind", "district_id", "school_id"))
    return Roles(
        super_admin=any(kind == RoleKind.SUPER_ADMIN for kind, _, _ in rows),
        districts=frozenset(district for kind, district, _ in rows if kind == RoleKind.DISTRICT_ADMIN),
        schools=frozenset(school for kind, _, school in rows if kind == RoleKind.LIBRARY_STAFF),
    )


def is_super_admin(user: User) -> bool:
    return roles(user).super_admin


def administered_districts(user: User) -> QuerySet[District]:
    """Districts whose settings and delivery log the user may manage."""
    found = roles(user)
    return District.objects.all() if found.super_admin else District.objects.filter(pk__in=found.districts)


def staffed_schools(user: User) -> QuerySet[School]:
    """Schools the user may send notices for: their own as staff, and every school they administer."""
    found = roles(user)
    if found.super_admin:
        return School.objects.all()
    return School.objects.filter(Q(pk__in=found.schools) | Q(district__in=found.districts))


def own_schools(user: User) -> QuerySet[School]:
    """The schools where the user works as library staff (administrators reach schools through Setup)."""
    return School.objects.filter(pk__in=roles(user).schools)


def get_installation_for_user(user: User) -> Installation:
    if not is_super_admin(user):
        raise Http404
    found = selectors.kept(request_version(user), "installation", lambda: Installation.objects.filter(id=1).first())
    if found is None:
        raise Http404
    return found


def get_district_for_user(user: User, slug: str) -> District:
    found = roles(user)
    districts = District.objects.select_related("installation")
    district = selectors.kept(request_version(user), f"district:{slug}", lambda: districts.filter(slug=slug).first())
    if district is None or not (found.super_admin or district.pk in found.districts):
        raise Http404
    return district


def get_school_for_user(user: User, slug: str) -> School:
    return get_object_or_404(staffed_schools(user).select_related("district__installation"), slug=slug)
