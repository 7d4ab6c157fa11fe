from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _

from settings_app import permissions


def navigation(request: HttpRequest) -> dict:
    """The main menu, worked out only when a page shows it (fragments never do)."""
    if not request.user.is_authenticated:
        return {}
    return {"nav_items": lambda: _items(request)}


def _items(request: HttpRequest) -> list[dict[str, str]]:
    """Only the places the user's roles open (no query for roles the user does not have)."""
    user = request.user
    roles = permissions.roles(user)
    items = []
    if roles.super_admin:
        items += [
            {"label": _("Setup"), "url": reverse("setup")},
            {"label": _("Delivery log"), "url": reverse("delivery_log")},
        ]
    elif roles.districts:
        districts = list(permissions.administered_districts(user))
        items.append({"label": _("Setup"), "url": reverse("setup")})
        for district in districts:
            label = _("Delivery log") if len(districts) == 1 else _("Delivery log: %(name)s") % {"name": district.name}
            items.append({"label": label, "url": reverse("district_delivery_log", kwargs={"slug": district.slug})})
    for school in permissions.own_schools(user) if roles.schools else []:
        items.append(
            {
                "label": _("Notices: %(name)s") % {"name": school.name},
                "url": reverse("school_notices", kwargs={"slug": school.slug}),
            }
        )
    return items
