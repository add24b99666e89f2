"""Command line: parse arguments, run one command, map errors to exit codes.

Exit codes (DESIGN.md): 0 success; 2 usage or input error (one line, no
traceback); 3 a gate failed; 1 internal error (traceback only with --debug).

Commands live in ``recommender.cli``: each module there defines ``NAME``,
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``, and is found
automatically, so adding a command touches no shared file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

from recommender import __version__
from recommender.errors import RecommenderError


def load_commands() -> list[ModuleType]:
    """Import every command module, sorted by command name."""
    import recommender.cli as package

    modules = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            modules.append(module)
    return sorted(modules, key=lambda m: str(m.NAME))


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="netpol",
        description="Learn least-privilege Kubernetes NetworkPolicies from observed flows.",
    )
    parser.add_argument("--version", action="version", version=f"netpol {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks for errors (for bug reports)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in load_commands():
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        cmd.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks for errors",
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    try:
        parser = build_parser()
        args = parser.parse_args(args_list)
        if not getattr(args, "_run", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args._run(args))
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
