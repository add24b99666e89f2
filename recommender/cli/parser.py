"""Command line: parse arguments, run one command, map errors to exit codes.

Exit codes (DESIGN.md): 0 success; 2 usage or input error (one line, no
traceback); 3 a gate failed; 1 internal error (traceback only with --debug).

Commands live in ``recommender.cli``: each module there defines ``NAME``,
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``, and is found
automatically, so adding a command touches no shared file.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import pkgutil
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from recommender import __version__
from recommender.errors import RecommenderError
from recommender.progress import stop_all


@dataclass(frozen=True)
class Command:
    """A command found in ``recommender.cli``, known without importing it."""

    name: str
    help: str
    module: str


#: Options the top-level parser takes before the command name.
_TOP_OPTIONS = frozenset({"-h", "--help", "--version", "--debug"})


def _literal(tree: ast.Module, name: str) -> str | None:
    """The string a top-level ``NAME = "..."`` assigns, if it is a literal."""
    for node in tree.body:
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            literal = value.value if isinstance(value, ast.Constant) else None
            return literal if isinstance(literal, str) else None
    return None


def _command(package: str, path: Path) -> Command | None:
    """Read ``NAME`` and ``HELP`` from a command's source, importing it only if
    they are not plain strings (importing pulls in pandas and friends)."""
    module = f"{package}.{path.stem}"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name, help_text = _literal(tree, "NAME"), _literal(tree, "HELP")
    if name is None or help_text is None:
        loaded = importlib.import_module(module)
        if not (hasattr(loaded, "NAME") and hasattr(loaded, "run")):
            return None
        name, help_text = str(loaded.NAME), str(getattr(loaded, "HELP", ""))
    return Command(name, help_text, module)


def discover_commands() -> list[Command]:
    """Every command module in ``recommender.cli``, sorted by command name."""
    import recommender.cli as package

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        path = Path(package.__path__[0]) / f"{info.name}.py"
        if info.name.startswith("_") or info.name == "parser" or not path.is_file():
            continue
        command = _command(package.__name__, path)
        if command is not None:
            found.append(command)
    return sorted(found, key=lambda c: c.name)


def load_commands() -> list[ModuleType]:
    """Import every command module, sorted by command name."""
    return [importlib.import_module(c.module) for c in discover_commands()]


def selected_command(argv: Sequence[str]) -> str | None:
    """The command name in ``argv``: the first word that is not a top-level option.

    >>> selected_command(["--debug", "lint", "--help"])
    'lint'
    >>> selected_command(["--help"]) is None
    True
    """
    for word in argv:
        if word not in _TOP_OPTIONS:
            return None if word.startswith("-") else word
    return None


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


class UsageError(RecommenderError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def one_line(message: str) -> str:
    """An error message as one line (a parser's message may span several).

    >>> one_line('invalid YAML: bad character\\n  in "<byte string>", position 0')
    'invalid YAML: bad character; in "<byte string>", position 0'
    """
    parts = [p.strip() for p in message.splitlines()]
    return "; ".join(p for p in parts if p)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``netpol`` parser.

    Every command is listed, but only the one named in ``argv`` is imported and
    given its options (all of them when ``argv`` is None): a command module
    may import heavy libraries, and ``netpol --help`` must stay fast.
    """
    parser = _Parser(
        prog="netpol",
        description="Learn least-privilege Kubernetes NetworkPolicies from observed flows.",
    )
    parser.add_argument("--version", action="version", version=f"netpol {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks for errors (for bug reports)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    wanted = None if argv is None else selected_command(argv)
    for command in discover_commands():
        cmd = sub.add_parser(command.name, help=command.help, description=command.help)
        if argv is None or command.name == wanted:
            _add_command_arguments(cmd, importlib.import_module(command.module))
    return parser


def _add_command_arguments(cmd: argparse.ArgumentParser, module: ModuleType) -> None:
    cmd.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks for errors",
    )
    module.add_arguments(cmd)
    cmd.set_defaults(_run=module.run)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    try:
        parser = build_parser(args_list)
        args = parser.parse_args(args_list)
        if not getattr(args, "_run", None):
            parser.print_help(sys.stderr)
            return 2
        try:
            return int(args._run(args))
        finally:
            stop_all()  # a progress line left by an error goes before the message
    except RecommenderError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - the one place that catches everything
        if debug:
            traceback.print_exc()
        print(f"internal error: {type(exc).__name__}: {exc}; re-run with --debug", file=sys.stderr)
        return 1


def console_main() -> None:
    """Entry point of the ``netpol`` console script."""
    sys.exit(main())
