"""Demo circulation data: patrons and loans for every school, some of them overdue."""

import datetime as dt
import unicodedata

from django.db import transaction
from django.utils import timezone

from settings_app.models import Loan, Patron, School

_NAMES = [
    "Ana Lima",
    "Bo Chen",
    "Chloé Durand",
    "Dev Patel",
    "Emeka Obi",
    "Fatima Zahra",
    "Gus O'Neill",
    "Hana Sato",
    "Ivan Petrov",
    "José Núñez",
]
_TITLES = [
    "Charlotte's Web",
    "The Hobbit",
    "A Wrinkle in Time",
    "Holes",
    "Wonder",
    "The Giver",
    "Hatchet",
    "Matilda",
    "Number the Stars",
    "Bridge to Terabithia",
    "Island of the Blue Dolphins",
    "Where the Red Fern Grows",
]


@transaction.atomic
def seed_circulation_demo(*, today: dt.date | None = None) -> int:
    """Give every school without patrons ten demo patrons (most with overdue loans); returns patrons created.

    Idempotent: schools that already have patrons are left alone. Addresses use example.org (RFC 2606).
    """
    today = today or timezone.localdate()
    created = 0
    for school in School.objects.filter(patrons__isnull=True).order_by("id"):
        for index, name in enumerate(_NAMES):
            local = name.lower().replace(" ", ".").replace("'", "")
            # "Chloé" gives chloe: the accent goes, the letter stays.
            ascii_local = unicodedata.normalize("NFKD", local).encode("ascii", "ignore").decode()
            email = f"{ascii_local}.{school.slug}@example.org"
            # Half the patrons read Spanish first: their notices are written in Spanish.
            language = "es" if index % 2 else "en"
            patron = Patron.objects.create(
                school=school, name=name, email=email if index != 9 else "", language=language
            )
            Loan.objects.bulk_create(_loans(patron, index, today))
            created += 1
    return created


def _loans(patron: Patron, index: int, today: dt.date) -> list[Loan]:
    loans = []
    for k in range(1 + index % 3):
        title = _TITLES[(index * 3 + k) % len(_TITLES)]
        # Patrons 0-6 have overdue items (up to three weeks late); the others' items are due later.
        offset = -(3 + 7 * k + index) if index < 7 else 14 + k
        loans.append(Loan(patron=patron, title=title, due_on=today + dt.timedelta(days=offset)))
    return loans
