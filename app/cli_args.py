"""Argument types shared by the `rise` subcommands: a bad value is refused by argparse itself
(a message naming the option and exit status 2), before any model is loaded.

    ap.add_argument("--turns", type=positive_int, default=5)
    ap.add_argument("--out", type=writable_dir, required=True)
    python -m app.cli eval --turns 0 --out /tmp/x     # rise eval: error: argument --turns: must be at least 1, not 0
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import tempfile
from pathlib import Path

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Every subcommand's `--help`: each option ends with its default, options without help text
    included (argparse's ArgumentDefaultsHelpFormatter skips those and prints "default: None"). A
    default of None, False or an empty list means "not given" and is not shown, nor is a default
    the help text already states (it says "default").

        argparse.ArgumentParser(prog="rise eval", formatter_class=DefaultsHelpFormatter)
    """

    def _format_action(self, action):
        if not action.help and shows_default(action):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action):
        text = action.help or ""
        if not shows_default(action) or "%(default)" in text or "default" in text.lower():
            return text
        return f"{text} (default: %(default)s)"


def shows_default(action: argparse.Action) -> bool:
    """Whether `--help` shows this option's default (DefaultsHelpFormatter)."""
    default = action.default
    if isinstance(action, (argparse._HelpAction, argparse._VersionAction)) or default is argparse.SUPPRESS:
        return False
    if default is None or default is False or (isinstance(default, (list, tuple)) and not default):
        return False
    return bool(action.option_strings) or action.nargs in ("?", "*")


def _number(kind, text: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def _bounded(kind, low, *, strict: bool, describe: str):
    """An argparse type: a `kind` number above `low` (strict) or at least `low`."""
    def check(text: str):
        value = _number(kind, text)
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {describe}, not {text}")
        return value

    return check


positive_int = _bounded(int, 1, strict=False, describe="at least 1")
non_negative_int = _bounded(int, 0, strict=False, describe="0 or more")
positive_float = _bounded(float, 0.0, strict=True, describe="above 0")
non_negative_float = _bounded(float, 0.0, strict=False, describe="0 or more")


def seed(text: str) -> int:
    value = non_negative_int(text)
    if value >= 2**63:
        raise argparse.ArgumentTypeError("must be below 2**63")
    return value


def temperature(text: str) -> float:
    value = non_negative_float(text)
    if value > 10:
        raise argparse.ArgumentTypeError(f"must be in [0, 10], not {text}")
    return value


def share(text: str) -> float:
    """A share in [0, 1], such as the part of generated attempts that are right."""
    value = _number(float, text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], not {text}")
    return value


def probability(text: str) -> float:
    """A share in (0, 1], such as top-p."""
    value = _number(float, text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], not {text}")
    return value


def port(text: str) -> int:
    value = _number(int, text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port in [0, 65535], not {value}")
    return value


def log_level(text: str) -> str:
    if text.lower() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(LOG_LEVELS)}, not {text!r}")
    return text.lower()


def readable_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text} is not readable")
    return path


def model_dir(text: str) -> Path:
    """An HF model directory (one with a config.json)."""
    from app.config import model_problem

    problem = model_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return Path(text)


def writable_dir(text: str) -> Path:
    """An output directory: created now if missing (so that a run never ends by failing to save
    its results), and checked by writing a probe file into it."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot write to {text}: {e.strerror or e}") from None
    return path
