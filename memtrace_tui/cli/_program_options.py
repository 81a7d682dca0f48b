"""The options of the subcommands that run a program (`run`, `live`): memtrace's own options
first, then the program's command line untouched, as python takes it (the split itself is
the engine's: memtrace_core/tracer/program.py)."""

from __future__ import annotations

import argparse

from memtrace_core.tracer.program import (
    PROGRAM_USAGE,
    Program,
    require_program,
)
from memtrace_core.tracer.program import split_command_line as _split


def add_program_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared by `run` and `live`; added last, as the program's command line
    follows them."""
    parser.add_argument(
        "--native", action="store_true", help="also record native (C/C++) stacks"
    )
    parser.add_argument(
        "--trace-python-allocators",
        action="store_true",
        help="record every PyMem/PyObject allocation, not only the arenas pymalloc maps",
    )
    parser.add_argument(
        "--arrow-system-pool",
        action="store_true",
        help="Apache Arrow (pyarrow, pandas' Arrow-backed columns) allocates through the "
             "system's malloc, so each of its allocations is recorded, instead of from its "
             "own mimalloc or jemalloc pool, which memtrace sees only as the memory the pool "
             "maps (sets ARROW_DEFAULT_MEMORY_POOL=system for the program)",
    )
    add_sample_option(parser)
    mark_takes_program(parser)


def program_from_args(args: argparse.Namespace) -> Program:
    """The program given after memtrace's options, or a usage error."""
    return require_program(getattr(args, "program", None))


def sample_bytes(text: str) -> int:
    """argparse type of --sample: `512KiB`, `1MB`, `65536` as bytes."""
    from memtrace_core.sampling import parse_sample_bytes

    try:
        return parse_sample_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_sample_option(parser: argparse.ArgumentParser) -> None:
    """--sample BYTES, shared by run, live and attach."""
    parser.add_argument(
        "--sample", type=sample_bytes, metavar="BYTES", default=0,
        help="production mode: record a sample of the allocations, one every ~BYTES "
             "allocated per thread on average (e.g. 512KiB), and estimate the rest; every "
             "figure is then an estimate, marked ≈",
    )


def mark_takes_program(parser: argparse.ArgumentParser) -> None:
    """Mark a subcommand whose tokens after its own options are a python command line."""
    parser.usage = parser.format_usage().removeprefix("usage: ").rstrip() + " " + PROGRAM_USAGE
    parser.set_defaults(takes_program=True)
    extra = ("Everything after the script, -m module or -c code goes to the program "
             "untouched, as with python; `--` ends memtrace's options.")
    parser.epilog = f"{parser.epilog} {extra}" if parser.epilog else extra


def takes_program(parser: argparse.ArgumentParser) -> bool:
    return bool(parser.get_default("takes_program"))


def split_command_line(
    parser: argparse.ArgumentParser, tokens: list[str]
) -> tuple[list[str], Program | None]:
    """Split a subcommand's tokens into its own options and the program to run."""

    def arity(option: str) -> int | None:
        action = (_long_action(parser, option) if option.startswith("--")
                  else parser._option_string_actions.get(option))
        return None if action is None else int(action.nargs != 0)

    return _split(arity, tokens)


def _long_action(parser: argparse.ArgumentParser, option: str) -> argparse.Action | None:
    """The action of a long option, abbreviations included (as argparse accepts them)."""
    actions = parser._option_string_actions
    if option in actions:
        return actions[option]
    matches = {actions[name] for name in actions if name.startswith(option)}
    return matches.pop() if len(matches) == 1 else None
