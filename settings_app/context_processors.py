from django.http import HttpRequest
from django.urls import reverse

from settings_app import permissions


def navigation(request: HttpRequest) -> dict:
    """The main menu, worked out only when a page shows it (fragments never do)."""
    if not request.user.is_authenticated:
        return {}
    return {"nav_items": lambda: _items(request)}


def _items(request: HttpRequest) -> list[dict[str, str]]:
    """Only the places the user's roles open."""
    user = request.user
    items = []
    if permissions.is_super_admin(user):
        items += [
            {"label": "Setup", "url": reverse("setup")},
            {"label": "Delivery log", "url": reverse("delivery_log")},
        ]
    else:
        districts = list(permissions.administered_districts(user))
        if districts:
            items.append({"label": "Setup", "url": reverse("setup")})
        for district in districts:
            label = "Delivery log" if len(districts) == 1 else f"Delivery log: {district.name}"
            items.append({"label": label, "url": reverse("district_delivery_log", kwargs={"slug": district.slug})})
    for school in permissions.own_schools(user):
        items.append(
            {"label": f"Notices: {school.name}", "url": reverse("school_notices", kwargs={"slug": school.slug})}
        )
    return items
