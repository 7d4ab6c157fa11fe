"""The language of command output: the one the shell's locale asks for (LANGUAGE, LC_ALL, LC_MESSAGES, LANG), when
the product speaks it; English otherwise."""

import os
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import translation

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


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


class LocalizedCommand(BaseCommand):
    """A command that speaks the shell's language: its --help, its errors and its output.

    `description` (lazy) replaces BaseCommand.help, which argparse would read before any language is chosen.
    """

    description: "StrOrPromise" = ""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.description = str(self.description) or None
        return parser

    def print_help(self, prog_name: str, subcommand: str) -> None:  # manage.py help <command>
        with translation.override(from_environment()):
            super().print_help(prog_name, subcommand)

    def run_from_argv(self, argv: list[str]) -> None:
        with translation.override(from_environment()):
            super().run_from_argv(argv)

    def execute(self, *args: Any, **options: Any) -> str | None:
        with translation.override(from_environment()):
            return super().execute(*args, **options)
