"""Command-line helpers shared by every ``python -m`` entry point: argparse without ``SystemExit`` for checks.

The workflow validates each CLI's flags before any job runs (``workflow/rules/validate.smk``) by calling the module's
own ``check_argv(argv)``; that must say what is wrong in one line instead of printing usage and exiting.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


class CLIError(ValueError):
    """A command line its parser rejects (unknown flag, bad value, missing required flag)."""


def parse_strict(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """``parser.parse_args(argv)``, but a rejected command line raises :class:`CLIError` with argparse's one-line
    reason (``unrecognized arguments: --stpes 20``) instead of printing usage and exiting with status 2."""

    def fail(message: str):
        raise CLIError(" ".join(str(message).split()))

    parser.error = fail  # type: ignore[method-assign]  (an instance attribute: this parser only)
    for action in parser._actions:  # subparsers build their own parsers: make them raise too
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.error = fail  # type: ignore[method-assign]
    try:
        return parser.parse_args(list(argv))
    except argparse.ArgumentError as e:
        raise CLIError(" ".join(str(e).split())) from None
