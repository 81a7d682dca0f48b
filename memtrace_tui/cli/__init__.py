"""The `memtrace` command (the application's side: the engine, memtrace_core, has none):
one module per subcommand in this package.

Each subcommand module defines `register(subparsers)` which adds its parser and sets
`func=run` (a callable taking the parsed args and returning an exit status). Modules keep
their heavy imports inside `run`, so `memtrace run` starts fast and never loads textual.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from memtrace_core import __version__
from memtrace_core.errors import UserError

MIN_PYTHON = (3, 10)
MAX_PYTHON = (3, 13)


def build_parser() -> argparse.ArgumentParser:
    """Collect every subcommand module of this package into one parser."""
    parser = argparse.ArgumentParser(
        prog="memtrace",
        description="Memory profiler for Python programs: Python and native frames, live.",
    )
    parser.add_argument("--version", action="version", version=f"memtrace {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def check_python(version: tuple[int, ...] = tuple(sys.version_info)) -> None:
    """Refuse unsupported interpreters before anything version-specific loads (the tracer
    reads each version's frame layout: tracer/pystack.c)."""
    if not MIN_PYTHON <= tuple(version[:2]) <= MAX_PYTHON:
        raise UserError(
            f"Python {version[0]}.{version[1]} is not supported; memtrace needs CPython "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} to {MAX_PYTHON[0]}.{MAX_PYTHON[1]}"
        )


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse memtrace's options; a subcommand that runs a program (`run`, `live`) gets the
    program's command line untouched, as python takes it (memtrace_core/tracer/program.py),
    in `args.program`."""
    from memtrace_tui.cli._program_options import split_command_line, takes_program

    commands: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            commands = action.choices
    program = None
    at = next((i for i, token in enumerate(argv) if not token.startswith("-")), None)
    if at is not None and argv[at] in commands and takes_program(commands[argv[at]]):
        own, program = split_command_line(commands[argv[at]], argv[at + 1:])
        argv = [*argv[:at + 1], *own]
    args = parser.parse_args(argv)
    args.program = program
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    try:
        check_python()
        parser = build_parser()
        args = parse(parser, sys.argv[1:] if argv is None else list(argv))
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"memtrace: error: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
