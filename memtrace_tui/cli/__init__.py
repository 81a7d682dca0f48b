"""The `memtrace` command (the application's side: the engine, memtrace_core, has none):
one module per subcommand in this package.

Each subcommand module defines `register(subparsers)` which adds its parser and sets
`func=run` (a callable taking the parsed args and returning an exit status). Modules keep
their heavy imports inside `run`, so `memtrace run` starts fast and never loads textual.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from memtrace_core import __version__
from memtrace_core.errors import UserError
from memtrace_core.tracer import collector

MIN_PYTHON = (3, 10)
MAX_PYTHON = (3, 13)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Collect every subcommand module of this package into one parser; with `only` (a
    subcommand's name), that subcommand alone: `memtrace run` then loads nothing of the
    others (their options pull in the model, the reader...), part of the start-up cost
    every traced run pays (issue 14)."""
    parser = _Parser(
        prog="memtrace",
        description="Memory profiler for Python programs: Python and native frames, live.",
    )
    parser.add_argument("--version", action="version", version=f"memtrace {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in [only] if only is not None else subcommand_names():
        module = importlib.import_module(f"{__name__}.{name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, told the terminal's width as shutil would find it (COLUMNS,
    else stdout's terminal, else 80) without importing shutil and the compression modules it
    loads: argparse makes a formatter for every option it adds, at every start."""

    def __init__(self, prog: str, *args: object, **kwargs: object) -> None:
        if not args and "width" not in kwargs:
            kwargs["width"] = _terminal_columns() - 2  # as argparse does with shutil's
        super().__init__(prog, *args, **kwargs)  # type: ignore[arg-type]


def _terminal_columns() -> int:
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Parser(argparse.ArgumentParser):
    """memtrace's parsers (subcommands' too: argparse makes them of the main parser's class)
    format with _Formatter."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


def subcommand_names() -> list[str]:
    """The subcommands: this package's public modules, sorted."""
    import pkgutil

    return sorted(info.name for info in pkgutil.iter_modules(__path__)
                  if not info.name.startswith("_"))


def named_subcommand(argv: list[str]) -> str | None:
    """The subcommand the command line names (its first word that is not an option), when
    it is one of this package's modules; else None (help, --version, a typo: the whole
    parser says what there is)."""
    word = next((token for token in argv if not token.startswith("-")), None)
    if word is None or word.startswith("_") or not word.isidentifier():
        return None
    return word if os.path.isfile(os.path.join(__path__[0], f"{word}.py")) else None


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
        argv = sys.argv[1:] if argv is None else list(argv)
        parser = build_parser(named_subcommand(argv))
        args = parse(parser, argv)
        if not getattr(args, "starts_program", False):
            collector.resume()  # paused by the entry point for `run` alone (entry.py)
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
