from django.http import HttpRequest
from django.urls import reverse

from settings_app import permissions


def navigation(request: HttpRequest) -> dict:
    """The main menu: only the places the user's roles open."""
    user = request.user
    if not user.is_authenticated:
        return {}
    items = []
    if permissions.is_super_admin(user) or permissions.administered_districts(user).exists():
        items.append({"label": "Setup", "url": reverse("setup")})
    return {"nav_items": items}
