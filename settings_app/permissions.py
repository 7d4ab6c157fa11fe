"""Who may see and change what. Roles are read on every request, so a removed role takes effect at once.

Access helpers raise Http404 for a scope the user may not see, so ids of other scopes reveal nothing.
"""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.auth.models import User as AuthUser
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404

from settings_app.models import District, Installation, Role, RoleKind, School

User = AbstractBaseUser | AnonymousUser


class AuthenticatedRequest(HttpRequest):
    """Every view but login sits behind LoginRequiredMiddleware, so its user is a real account."""

    user: AuthUser  # type: ignore[assignment]


def _roles(user: User) -> QuerySet[Role]:
    if not user.is_authenticated or not user.is_active:
        return Role.objects.none()
    return Role.objects.filter(user_id=user.pk)


def is_super_admin(user: User) -> bool:
    return _roles(user).filter(kind=RoleKind.SUPER_ADMIN).exists()


def administered_districts(user: User) -> QuerySet[District]:
    """Districts whose settings and delivery log the user may manage."""
    if is_super_admin(user):
        return District.objects.all()
    return District.objects.filter(roles__in=_roles(user).filter(kind=RoleKind.DISTRICT_ADMIN)).distinct()


def staffed_schools(user: User) -> QuerySet[School]:
    """Schools the user may send notices for: their own as staff, and every school they administer."""
    if is_super_admin(user):
        return School.objects.all()
    staff_roles = _roles(user).filter(kind=RoleKind.LIBRARY_STAFF)
    return School.objects.filter(Q(roles__in=staff_roles) | Q(district__in=administered_districts(user))).distinct()


def own_schools(user: User) -> QuerySet[School]:
    """The schools where the user works as library staff (administrators reach schools through Setup)."""
    return School.objects.filter(roles__in=_roles(user).filter(kind=RoleKind.LIBRARY_STAFF)).distinct()


def get_installation_for_user(user: User) -> Installation:
    if not is_super_admin(user):
        raise Http404
    return get_object_or_404(Installation, id=1)


def get_district_for_user(user: User, slug: str) -> District:
    return get_object_or_404(administered_districts(user).select_related("installation"), slug=slug)


def get_school_for_user(user: User, slug: str) -> School:
    return get_object_or_404(staffed_schools(user).select_related("district__installation"), slug=slug)
