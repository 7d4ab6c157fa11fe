"""The language of command output: the one the shell's locale asks for (LANGUAGE, LC_ALL, LC_MESSAGES, LANG), when
the product speaks it; English otherwise."""

import functools
import os
from collections.abc import Callable

from django.conf import settings
from django.utils import translation


def from_environment() -> str:
    """The first supported language among the shell's locale variables, else LANGUAGE_CODE."""
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        for wanted in os.environ.get(variable, "").split(":"):
            locale_name = wanted.split(".")[0].split("@")[0]
            if not locale_name or locale_name in ("C", "POSIX"):
                continue
            try:
                return translation.get_supported_language_variant(translation.to_language(locale_name))
            except LookupError:
                continue
    return settings.LANGUAGE_CODE


def in_environment_language[**P, R](handle: Callable[P, R]) -> Callable[P, R]:
    """Run a command's `handle` in the shell's language (restoring the caller's afterwards)."""

    @functools.wraps(handle)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with translation.override(from_environment()):
            return handle(*args, **kwargs)

    return wrapper
