"""Options several commands share are defined once, in ``recommender/cli/_args.py``."""

from __future__ import annotations

import re

from tests.conftest import ROOT

SHARED = ("--force", "--flows", "--inventory", "--strict")


def test_no_command_defines_a_shared_option_itself() -> None:
    defined = {}
    for path in sorted((ROOT / "recommender" / "cli").glob("*.py")):
        if path.name in ("_args.py", "simulate.py"):  # simulate's --flows is a line count
            continue
        text = path.read_text()
        hits = [o for o in SHARED if re.search(rf"add_argument\(\s*\"{o}\"", text)]
        if hits:
            defined[path.name] = hits
    assert defined == {}


def test_every_writing_command_has_force_from_the_builder() -> None:
    from recommender.cli.parser import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    choices = sub.choices
    writers = [
        n
        for n, p in choices.items()
        if any(a.dest == "out" or a.dest == "json" for a in p._actions)
    ]
    assert len(writers) >= 8
    for name in writers:
        force = [a for a in choices[name]._actions if "--force" in a.option_strings]
        assert force, name
        assert (force[0].help or "").startswith("replace"), name
