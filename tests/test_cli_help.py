"""Every `rise` subcommand's `--help` shows each option's default: the test walks all of them,
catches the parser each one prints, and checks every option that has a default (not None, False
or empty: "not given") against the printed text; `rise serve`'s options show their settings'
defaults.

    .venv/bin/pytest -q -n 0 tests/test_cli_help.py
"""

import argparse
import contextlib
import io
import subprocess
import sys

import pytest

from app import cli
from app.cli_args import shows_default
from app.config import Settings

SUBCOMMANDS = [["refine"], ["serve"], ["eval"], ["bench"], ["traces", "export"], ["train", "base"], ["train", "rise"]]


def printed_parser(monkeypatch, argv) -> tuple[argparse.ArgumentParser, str]:
    caught = []
    original = argparse.ArgumentParser.print_help

    def catch(self, file=None):
        caught.append(self)
        original(self, file)

    monkeypatch.setattr(argparse.ArgumentParser, "print_help", catch)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as e:
        cli.main([*argv, "--help"])
    assert e.value.code == 0 and len(caught) == 1
    return caught[0], " ".join(out.getvalue().split())


def test_every_subcommand_is_walked():
    assert {argv[0] for argv in SUBCOMMANDS} == set(cli.COMMANDS)


@pytest.mark.parametrize("argv", SUBCOMMANDS, ids=" ".join)
def test_help_shows_every_default(monkeypatch, argv):
    parser, text = printed_parser(monkeypatch, argv)
    checked = 0
    for action in parser._actions:
        if argv == ["serve"] and action.dest in Settings.model_fields:
            assert "(default: " in action.help, action.dest
            checked += 1
        elif shows_default(action):
            value = action.default
            shown = " ".join(str(value).split())
            helped = " ".join((action.help or "").split())
            # the formatter's "(default: X)", or the help text's own words for it ("default: every level once")
            assert f"(default: {shown})" in text or "default" in helped.lower(), (action.option_strings, value)
            checked += 1
    assert checked or argv == ["traces", "export"]  # its options are all required or flags


def test_a_real_process_prints_them():
    p = subprocess.run([sys.executable, "-m", "app.cli", "refine", "--help"], capture_output=True, text=True,
                       timeout=120)
    text = " ".join(p.stdout.split())
    assert p.returncode == 0 and "--turns TURNS max turns K (default: 5)" in text
    assert "--early-stop {none,agree,settled,confident}" in text and "(default: none)" in text
    assert "--window {last,full}" in text and "(default: last)" in text
