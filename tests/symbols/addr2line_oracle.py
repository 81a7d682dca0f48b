"""Ground truth from elfutils: run `eu-addr2line -f -i -C` and parse its answer into
[(function, file, line), ...] innermost first per address."""

from __future__ import annotations

import re
import subprocess

_INLINED = re.compile(r"^(.*) inlined at (.*) in (.*)$")


def _split_loc(loc: str) -> tuple[str, int]:
    """`file:line[:col]` -> (file, line); `??:0` -> ("", 0)."""
    if loc.endswith(":?"):  # binutils: a file but line 0
        return loc[:-2], 0
    parts = loc.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        file, line = parts[0], int(parts[1])
    elif len(parts) >= 2 and parts[-1].isdigit():
        file, line = loc.rsplit(":", 1)[0], int(parts[-1])
    else:
        file, line = loc, 0
    if file == "??":
        file = ""
    return file, line


def eu_addr2line(lib: str, vaddrs: list[int]) -> dict[int, list[tuple[str, str, int]]]:
    """Frames per address as eu-addr2line prints them (-f -i -C)."""
    out: dict[int, list[tuple[str, str, int]]] = {}
    chunk = 2000
    for i in range(0, len(vaddrs), chunk):
        part = vaddrs[i:i + chunk]
        r = subprocess.run(
            ["eu-addr2line", "-f", "-i", "-C", "-a", "-e", lib, *[hex(a) for a in part]],
            capture_output=True, text=True)
        if r.returncode not in (0, 1):  # 1: some address had no answer
            raise RuntimeError(f"eu-addr2line failed: {r.stderr[-200:]}")
        text = r.stdout
        cur: list[tuple[str, str, int]] | None = None
        lines = text.splitlines()
        j = 0
        while j < len(lines):
            ln = lines[j]
            if ln.startswith("0x") and all(c in "0123456789abcdefx" for c in ln):
                cur = out.setdefault(int(ln, 16), [])
                j += 1
                continue
            name = ln
            m = _INLINED.match(name)
            if m:
                name = m.group(1)
            file, line = _split_loc(lines[j + 1]) if j + 1 < len(lines) else ("", 0)
            assert cur is not None
            cur.append((name, file, line))
            j += 2
    return out


def binutils_addr2line(lib: str, vaddrs: list[int]) -> dict[int, list[tuple[str, str, int]]]:
    """Frames per address as binutils' `addr2line -f -i -C` prints them."""
    out: dict[int, list[tuple[str, str, int]]] = {}
    chunk = 2000
    for i in range(0, len(vaddrs), chunk):
        part = vaddrs[i:i + chunk]
        text = subprocess.run(
            ["addr2line", "-f", "-i", "-C", "-a", "-e", lib, *[hex(a) for a in part]],
            capture_output=True, text=True, check=True).stdout
        lines = text.splitlines()
        cur: list[tuple[str, str, int]] = []
        j = 0
        while j < len(lines):
            ln = lines[j]
            if ln.startswith("0x") and all(c in "0123456789abcdefx" for c in ln):
                cur = out.setdefault(int(ln, 16), [])
                j += 1
                continue
            loc = lines[j + 1].split(" (discriminator")[0] if j + 1 < len(lines) else "??:0"
            cur.append((ln, *_split_loc(loc)))
            j += 2
    return out


def llvm_symbolizer(tool: str, lib: str, vaddrs: list[int]
                    ) -> dict[int, list[tuple[str, str, int]]]:
    """Frames per address as LLVM's `llvm-symbolizer` prints them (for clang output,
    whose .debug_aranges-less DWARF 5 elfutils 0.188 does not read)."""
    text = subprocess.run([tool, f"--obj={lib}", "--print-address", "--inlines", "--demangle"],
                          input="\n".join(hex(a) for a in vaddrs), capture_output=True,
                          text=True, check=True).stdout
    out: dict[int, list[tuple[str, str, int]]] = {}
    cur: list[tuple[str, str, int]] = []
    lines = text.splitlines()
    j = 0
    while j < len(lines):
        ln = lines[j]
        if not ln:
            j += 1
            continue
        if ln.startswith("0x") and all(c in "0123456789abcdefx" for c in ln):
            cur = out.setdefault(int(ln, 16), [])
            j += 1
            continue
        cur.append((ln, *_split_loc(lines[j + 1])))
        j += 2
    return out
