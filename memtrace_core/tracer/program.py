"""The program to run and its command line, taken exactly as `python` takes it.

`memtrace run [memtrace options] script.py args…` (or `-m module`, `-c code`, `-` for stdin):
memtrace's own options come first; the first token that is not one of them starts the
program's command line, and everything after it goes to the program untouched (`--help`
included). `--` ends memtrace's options; the token after it is the script, whatever it
looks like. argparse cannot express this (it parses options anywhere), so the split is done
here, told only which of the command's options take a value (memtrace_tui/cli/_program_options.py
asks the subcommand's parser; the runner has its own few options).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from memtrace_core.errors import UserError

SCRIPT, MODULE, CODE, STDIN = "script", "module", "code", "stdin"
PROGRAM_USAGE = "(script | -m module | -c code | -) [args ...]"


class Program:
    """What to run: a script path, a module name, a code string or stdin, and its arguments.
    (A plain class: `dataclasses` pulls in `inspect`, a few milliseconds of every traced
    run's start-up.)"""

    __slots__ = ("target", "args", "kind")

    def __init__(self, target: str, args: list[str] | None = None, kind: str = SCRIPT) -> None:
        self.target = target
        self.args = [] if args is None else args
        self.kind = kind

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Program) and (self.target, self.args, self.kind) == (
            other.target, other.args, other.kind)

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass would be

    def __repr__(self) -> str:
        return f"Program(target={self.target!r}, args={self.args!r}, kind={self.kind!r})"

    @property
    def module(self) -> bool:
        return self.kind == MODULE

    @property
    def command_line(self) -> list[str]:
        """The program's part of python's command line: `script args`, `-m module args`…"""
        if self.kind == MODULE:
            return ["-m", self.target, *self.args]
        if self.kind == CODE:
            return ["-c", self.target, *self.args]
        if self.kind == STDIN:
            return ["-", *self.args]
        return [self.target, *self.args]

    @property
    def argv(self) -> list[str]:
        """sys.argv as python sets it before the program runs (runpy then puts a module's
        path in argv[0])."""
        if self.kind == SCRIPT:
            return [self.target, *self.args]
        return [{MODULE: "-m", CODE: "-c", STDIN: "-"}[self.kind], *self.args]

    @property
    def runner_command_line(self) -> list[str]:
        """The command line again for another parser: a script after `--`, so a script
        whose name starts with `-` stays a script."""
        return ["--", *self.command_line] if self.kind == SCRIPT else self.command_line

    @property
    def name(self) -> str:
        """A short name for files: the script's stem, the module, `c` or `stdin`."""
        if self.kind == MODULE:
            return self.target
        if self.kind == CODE:
            return "c"
        if self.kind == STDIN:
            return "stdin"
        return os.path.splitext(os.path.basename(self.target.rstrip("/")))[0] or "program"

    def check(self) -> None:
        """Fail before tracing starts where python would fail before running anything,
        with python's message and exit status (2 for a script that cannot be opened)."""
        if self.kind == MODULE:
            _check_module(self.target)
        elif self.kind == SCRIPT:
            _check_script(self.target)


def _check_script(path: str) -> None:
    abspath = os.path.abspath(path)
    if os.path.isdir(path):
        if not any(os.path.exists(os.path.join(path, f"__main__{ext}"))
                   for ext in (".py", ".pyc")):
            raise UserError(f"can't find '__main__' module in {abspath!r}")
        return
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise UserError(
            f"can't open file {abspath!r}: [Errno {exc.errno}] {exc.strerror}", status=2
        ) from None
    if head == b"PK\x03\x04" and not _zip_has_main(path):
        raise UserError(f"can't find '__main__' module in {abspath!r}")


def _zip_has_main(path: str) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return True  # not a zip after all: python runs it as source
    return "__main__.py" in names or "__main__.pyc" in names


def _check_module(name: str) -> None:
    """The top-level package must exist; looking it up imports nothing. Deeper errors (a
    missing submodule, a package without __main__) are runpy's, inside the traced run, with
    python's own message, as importing the parents runs the program's code."""
    import importlib.util
    import sys

    top = name.partition(".")[0]
    if not top or name.startswith(".") or name.endswith("."):
        raise UserError("Relative module names not supported" if name.startswith(".")
                        else f"No module named {name}")
    saved = sys.path[0] if sys.path else None
    if sys.path:
        sys.path[0] = os.getcwd()  # where `python -m` looks first
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    finally:
        if saved is not None:
            sys.path[0] = saved
    if spec is None:
        raise UserError(f"No module named {name}")


def split_command_line(
    arity: Callable[[str], int | None], tokens: list[str]
) -> tuple[list[str], Program | None]:
    """Split a command's tokens into its own options and the program to run. `arity(option)`
    says how many values one of the command's options takes (0 or 1), None for an option
    the command does not have."""
    own: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--":
            return own, program_from_tokens([*tokens[i + 1:]], after_dashes=True)
        if token == "-" or not token.startswith("-"):
            return own, program_from_tokens(tokens[i:])
        own.append(token)
        if token.startswith("--"):
            values = arity(token.partition("=")[0])
            if values and "=" not in token:
                if i + 1 < len(tokens):
                    own.append(tokens[i + 1])
                    i += 1
            i += 1
            continue
        # a cluster of short options: -f, -oFILE, -o FILE, -fo FILE, -mjson.tool, -fc CODE
        for j in range(1, len(token)):
            switch = token[j]
            values = arity("-" + switch)
            if switch in "mc" and values is None:
                own.pop()
                if j > 1:
                    own.append(token[:j])
                rest = [token[j + 1:]] if token[j + 1:] else []
                return own, program_from_tokens([f"-{switch}", *rest, *tokens[i + 1:]])
            if values is None:
                break  # the command's parser reports it
            if values:
                if j == len(token) - 1 and i + 1 < len(tokens):
                    own.append(tokens[i + 1])
                    i += 1
                break
        i += 1
    return own, None


def program_from_tokens(tokens: list[str], after_dashes: bool = False) -> Program | None:
    """The program a python-style command line names (`script args`, `-m module args`,
    `-c code args`, `- args`), None when it is empty."""
    if not tokens:
        return None
    first = tokens[0]
    if first == "-":
        return Program("-", tokens[1:], STDIN)
    if after_dashes or first not in ("-m", "-c"):
        return Program(first, tokens[1:], SCRIPT)
    if len(tokens) < 2:
        raise UserError(f"Argument expected for the {first} option", status=2)
    return Program(tokens[1], tokens[2:], MODULE if first == "-m" else CODE)


def require_program(program: Program | None) -> Program:
    """The program, or a one-line usage error."""
    if program is None:
        raise UserError(f"give the program to run: {PROGRAM_USAGE}", status=2)
    return program
