"""`memtrace stats [--json] FILE`: totals, peak, leaks, sizes, allocators, top locations."""

from __future__ import annotations

import argparse
from typing import Any

from memtrace_core.sizes import format_bytes as _size

HUMAN_TOP = 10
JSON_TOP = 100


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "stats",
        help="summary statistics of a capture file",
        description="Print what a capture holds: total allocated, peak heap and when, heap "
        "still in use at the end (leaks), a size histogram, the allocators used and the "
        "top allocation locations by bytes and by count.",
    )
    p.add_argument("file", help="capture file written by `memtrace run`")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.add_argument("--all-processes", action="store_true",
                   help="FILE and its traced children's captures (FILE.PID, from "
                   "--follow-fork): each process's own figures, then all of them together, "
                   "locations merged by frame")
    p.add_argument(
        "--top",
        type=int,
        metavar="N",
        help=f"locations listed per table (default {HUMAN_TOP}; {JSON_TOP} with --json; "
        "0 for all)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from memtrace_core.reader import read_capture
    from memtrace_tui.cli._progress import Progress

    limit = args.top if args.top is not None else (JSON_TOP if args.json else HUMAN_TOP)
    embedded = None
    if args.all_processes:
        from memtrace_core.model.processes import read_processes

        with Progress("reading the captures") as progress:
            reader, embedded = read_processes(args.file, progress)
        for line in reader.skipped:
            print(f"memtrace: warning: skipped {line}", file=sys.stderr)
        summary = summarize(reader, limit or None, embedded)
        summary["processes"] = [_process_entry(path, r)
                                for path, r in zip(reader.paths, reader.readers, strict=True)]
        summary["peak_allocations"] = None  # heaps summed at their samples: no block count
    else:
        with Progress("reading the capture") as progress:
            reader = read_capture(args.file, progress=progress)
        if (reader.header or {}).get("native"):
            from memtrace_core.reader import read_names

            embedded = read_names(args.file)
        summary = summarize(reader, limit or None, embedded)
    if embedded is not None and embedded.warning:
        print(f"memtrace: warning: {embedded.warning}", file=sys.stderr)
    from memtrace_core.tracer.children import child_captures

    summary["child_captures"] = child_captures(args.file)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_human(summary, args.file)
    if reader.error:
        print(
            f"memtrace: error: {args.file}: {reader.error} (figures above stop there)",
            file=sys.stderr,
        )
        return 1
    return 0


def summarize(reader: Any, limit: int | None = None, embedded: Any = None) -> dict[str, Any]:
    """Everything `stats --json` prints, as a JSON-ready dict."""
    from memtrace_core.analysis import native_locations, python_locations, top
    from memtrace_core.reader import ALLOCATOR_NAMES
    from memtrace_core.sampling import sample_bytes

    header = reader.header
    py_locs = python_locations(reader)
    who = _process(reader)
    out: dict[str, Any] = {
        "file_format": header.get("format"),
        "sampled": sample_bytes(header),
        "pid": who["pid"],
        "command": who["command"],
        "python": header.get("python"),
        "native": bool(header.get("native", False)),
        "names_embedded": len(embedded) if embedded is not None else 0,
        "python_allocators": bool(header.get("python_allocators", False)),
        "attached": bool(header.get("attached", False)),
        "parent_pid": who["parent_pid"],
        "complete": who["complete"],
        "truncated": reader.truncated,
        "error": reader.error,
        "exit_code": who["exit_code"],
        "untraced_children": (reader.trailer or {}).get("untraced_children"),
        "duration_s": who["duration_s"],
        "records": reader.records,
        "total_allocated_bytes": reader.total_allocated_bytes,
        "total_allocations": reader.total_allocations,
        "total_frees": reader.total_frees,
        "peak_bytes": reader.peak_bytes,
        "peak_allocations": reader.peak_allocations,
        "peak_time_s": reader.peak_time_us / 1e6,
        "peak_by_s": reader.peak_by_us / 1e6,
        "leaked_bytes": reader.heap_bytes,
        "leaked_allocations": reader.heap_allocations,
        "allocators": {
            ALLOCATOR_NAMES.get(code, f"allocator-{code}"): {"count": count, "bytes": size}
            for code, (count, size) in sorted(reader.allocator_stats.items())
        },
        "size_histogram": [
            {"min_bytes": low, "max_bytes": max(0, 2 * low - 1), "count": count}
            for low, count in reader.size_histogram
        ],
        "top_locations": [
            _python_entry(loc, s) for loc, s in top(py_locs, "bytes", limit)
        ],
        "top_locations_by_count": [
            _python_entry(loc, s) for loc, s in top(py_locs, "count", limit)
        ],
        "top_leaking_locations": [
            _python_entry(loc, s)
            for loc, s in top(py_locs, "leaked_bytes", limit)
            if s.leaked_bytes
        ],
        "reserved": _reserved(reader, limit),
    }
    if out["native"]:
        from memtrace_core.symbols.names import Namer

        # the one resolver: the capture's own names first, then the persistent cache
        namer = Namer(reader, mode="sync", embedded=embedded)
        nat_locs = native_locations(reader)
        rows = top(nat_locs, "bytes", limit)
        out["top_native_locations"] = [
            {
                "module": loc.module,
                "offset": loc.offset,
                "build_id": loc.build_id,
                **_native_name(namer, loc),
                **_counters(s),
            }
            for loc, s in rows
        ]
        namer.close()
    return out


def _process(reader: Any) -> dict[str, Any]:
    """Which process a capture traced, and how and when it ended (the program's, for
    several processes read as one)."""
    header = reader.header or {}
    start = float(header.get("start_time") or 0.0)
    if reader.trailer is not None and start:
        duration = max(0.0, reader.trailer["end_time"] - start)
    else:
        duration = reader.last_time_us / 1e6
    argv = header.get("argv") or []
    return {
        "pid": header.get("pid"),
        "parent_pid": header.get("parent_pid"),
        "command": " ".join(str(a) for a in argv) if isinstance(argv, list) else str(argv),
        "complete": reader.complete,
        "exit_code": reader.trailer["exit_code"] if reader.trailer else None,
        "duration_s": round(duration, 6),
    }


def _process_entry(path: str, reader: Any) -> dict[str, Any]:
    """One process of `stats --all-processes`: who it was and its own figures, exact."""
    return {
        "file": path,
        **_process(reader),
        "total_allocated_bytes": reader.total_allocated_bytes,
        "total_allocations": reader.total_allocations,
        "peak_bytes": reader.peak_bytes,
        "leaked_bytes": reader.heap_bytes,
        "leaked_allocations": reader.heap_allocations,
    }


def _reserved(reader: Any, limit: int | None) -> dict[str, Any]:
    """Address space reserved (mmap with PROT_NONE, or MAP_NORESERVE of 1 GiB or more: an
    allocator's arena, memory only where touched), apart from every heap figure, and where
    it still is."""
    from memtrace_core.analysis import reserved_locations

    rows = sorted(reserved_locations(reader).items(), key=lambda kv: (-kv[1][0], repr(kv[0])))
    return {
        "bytes": reader.reserved_bytes,
        "mappings": reader.reserved_mappings,
        "peak_bytes": reader.reserved_peak_bytes,
        "total_bytes": reader.total_reserved_bytes,
        "total_mappings": reader.total_reservations,
        "locations": [
            {"function": loc.function, "file": loc.file, "line": loc.line, "bytes": size,
             "mappings": n}
            for loc, (size, n) in rows[:limit]
        ],
    }


def _native_name(namer: Any, loc: Any) -> dict[str, Any]:
    """The innermost frame (inlined ones first) at a native location (a return address's
    module and offset): function, file, line and kind."""
    if not loc.module:
        return {"function": f"0x{loc.offset:x}", "file": "", "line": 0, "kind": "nosymbol"}
    frame = namer.name_at(loc.module, loc.build_id, max(0, loc.offset - 1))[0]
    return {"function": frame.function, "file": frame.file, "line": frame.line,
            "kind": frame.kind.value}


def _counters(s: Any) -> dict[str, int]:
    return {
        "bytes": s.bytes,
        "count": s.count,
        "leaked_bytes": s.leaked_bytes,
        "leaked_count": s.leaked_count,
    }


def _python_entry(loc: Any, s: Any) -> dict[str, Any]:
    return {"function": loc.function, "file": loc.file, "line": loc.line, **_counters(s)}


def _short_path(path: str, width: int = 40) -> str:
    """A path relative to the current directory, or its tail when still too long."""
    import os

    if path.startswith("/"):
        try:
            rel = os.path.relpath(path)
        except ValueError:
            rel = path
        if not rel.startswith(".."):
            path = rel
    if len(path) > width:
        parts = path.split("/")
        path = "…/" + "/".join(parts[-2:])
    return path


def _env_int(name: str, default: int) -> int:
    import os

    try:
        return max(40, int(os.environ.get(name, "")))
    except ValueError:
        return default


def _peak_when(s: dict[str, Any]) -> str:
    """When the peak was reached. A sampled capture's records carry no time (a TICK every
    ~250 ms does): it says between which two ticks, not a tick's time as if it were the
    peak's ("at 0.000 s" for a peak reached before the first)."""
    if s.get("sampled") and s["peak_by_s"] > s["peak_time_s"]:
        return f"between {s['peak_time_s']:.3f} s and {s['peak_by_s']:.3f} s"
    return f"at {s['peak_time_s']:.3f} s"


def print_human(s: dict[str, Any], path: str) -> None:
    """Rich tables; plain text (no colour) when stdout is not a terminal."""
    import sys

    from rich.console import Console
    from rich.table import Table

    tty = sys.stdout.isatty()
    # Piped or redirected: no colour, and a width that fits paths rather than rich's 80.
    width = None if tty else _env_int("COLUMNS", 120)
    console = Console(highlight=False, no_color=not tty, width=width)

    console.print(f"[bold]memtrace stats[/bold] {path}")
    native = "yes" if s["native"] else "no"
    console.print(f"  command        {s['command']}   (pid {s['pid']}, Python {s['python']}, "
                  f"native frames: {native})")
    if s["complete"]:
        state = "complete" + (f", {_ended(s['exit_code'])}" if s["exit_code"] is not None
                              else "")
    else:
        state = "incomplete capture (no trailer: the program was killed or the stream was cut"
        state += "; last record cut short)" if s["truncated"] else ")"
    console.print(f"  duration       {s['duration_s']:.3f} s   {state}")
    if s.get("parent_pid"):
        console.print(f"  parent         pid {s['parent_pid']} (traced with --follow-fork)")
    if s.get("untraced_children"):
        n = s["untraced_children"]
        hint = "" if s.get("child_captures") else " (memtrace run --follow-fork traces them)"
        console.print(f"  children       {n} child process{'es' if n > 1 else ''} ran "
                      f"untraced{hint}")
    if s.get("child_captures"):
        together = "" if s.get("processes") else " (`stats --all-processes` adds them up)"
        console.print(f"  children       {len(s['child_captures'])} traced, each in its own "
                      f"capture: {', '.join(s['child_captures'])}{together}")
    e = ""  # the estimate mark of a sampled capture
    if s.get("sampled"):
        from memtrace_core.sampling import ESTIMATE_MARK, describe

        e = f"{ESTIMATE_MARK} "
        console.print(f"  sampling       {describe(s['sampled'])}: every figure below is an "
                      f"estimate ({ESTIMATE_MARK})")
    processes = s.get("processes")
    if processes:
        console.print(f"  processes      {len(processes)}: the program and its traced "
                      "children, each below with its own figures; every other figure is "
                      "all of them together")
        console.print(_processes_table(Table, processes, e))
    console.print(f"  allocated      {e}{_size(s['total_allocated_bytes'])} "
                  f"({e}{s['total_allocated_bytes']} B) in {e}{s['total_allocations']} "
                  "allocations")
    # several processes: their heaps summed at their samples, with no count of blocks
    blocks = "" if processes else f"in {e}{s['peak_allocations']} allocations "
    together = ", all processes at once (their heaps summed at each sample)" if processes else ""
    console.print(f"  peak heap      {e}{_size(s['peak_bytes'])} ({e}{s['peak_bytes']} B) "
                  f"{blocks}{_peak_when(s)}{together}")
    console.print(f"  leaked         {e}{_size(s['leaked_bytes'])} ({e}{s['leaked_bytes']} B) "
                  f"in {e}{s['leaked_allocations']} allocations still in use at the end")
    if s["reserved"]["total_mappings"]:
        first, *rest = _reserved_lines(s["reserved"])
        console.print(f"  reserved       {first}")
        for line in rest:
            console.print(f"                 {line}")
    estimated = f" ({e.strip()} estimates)" if e else ""

    table = Table(title=f"Allocators{estimated}", title_justify="left")
    table.add_column("allocator")
    table.add_column("count", justify="right")
    table.add_column("bytes", justify="right")
    for name, v in sorted(s["allocators"].items(), key=lambda kv: -kv[1]["bytes"]):
        table.add_row(name, str(v["count"]), _size(v["bytes"]))
    console.print(table)

    table = Table(title=f"Allocation sizes{estimated}", title_justify="left")
    table.add_column("size", justify="right")
    table.add_column("count", justify="right")
    table.add_column("", min_width=20)
    most = max((h["count"] for h in s["size_histogram"]), default=1)
    for h in s["size_histogram"]:
        low, high = h["min_bytes"], h["max_bytes"]
        label = _size(low) if low >= high else f"{_size(low)} - {_size(high)}"
        table.add_row(label, str(h["count"]), "#" * max(1, round(30 * h["count"] / most)))
    console.print(table)

    for title, key in (
        ("Top locations by bytes allocated", "top_locations"),
        ("Top locations by number of allocations", "top_locations_by_count"),
        ("Top locations by bytes still in use at the end", "top_leaking_locations"),
    ):
        if s[key]:
            rows = [
                (e["function"], f"{_short_path(e['file'])}:{e['line']}" if e["file"] else "", e)
                for e in s[key]
            ]
            console.print(_locations_table(Table, title + estimated, ("function", "file:line"),
                                           rows))
    if s.get("top_native_locations"):
        rows = [
            (e["function"], f"{_short_path(e['file'])}:{e['line']}" if e["file"] else
             f"{e['module'].rsplit('/', 1)[-1] or '?'}+{e['offset']:#x}", e)
            for e in s["top_native_locations"]
        ]
        console.print(
            _locations_table(
                Table,
                "Top native locations by bytes (innermost native frame)" + estimated,
                ("function", "file:line or module+offset"),
                rows,
            )
        )
    if not s["complete"]:
        console.print("[bold]incomplete capture[/bold]: figures cover the records up to "
                      "where it stops.")


def _ended(exit_code: int | None) -> str:
    """How a traced process ended, from its trailer's exit code (negative: a signal)."""
    if exit_code is None:
        return "exit status unknown"
    if exit_code < 0:
        return f"killed by signal {-exit_code}"
    return f"exit code {exit_code}"


def _processes_table(table_cls: Any, processes: list[dict[str, Any]], e: str) -> Any:
    """One row per process; `e`: the estimate mark of a sampled capture, or ""."""
    table = table_cls(title="Processes", title_justify="left")
    for name, justify in (("pid", "right"), ("parent", "right"), ("command", "left"),
                          ("ended", "left"), ("allocated", "right"), ("peak", "right"),
                          ("leaked", "right")):
        table.add_column(name, justify=justify, overflow="fold")
    for p in processes:
        ended = "incomplete" if not p["complete"] else _ended(p["exit_code"])
        table.add_row(str(p["pid"]), str(p["parent_pid"] or ""), p["command"],
                      f"{ended}, {p['duration_s']:.3f} s",
                      *(e + _size(p[key]) for key in ("total_allocated_bytes", "peak_bytes",
                                                      "leaked_bytes")))
    return table


def _reserved_lines(r: dict[str, Any]) -> list[str]:
    """Reserved address space: not in the figures above, and never estimated (a mapping is
    never sampled)."""
    n = r["mappings"]
    lines = [f"{_size(r['bytes'])} ({r['bytes']} B) of address space in {n} mapping"
             f"{'' if n == 1 else 's'} at the end ({_size(r['peak_bytes'])} at most), not "
             "counted above:",
             "mmap with PROT_NONE, or MAP_NORESERVE of 1 GiB or more: memory only where the "
             "program touches it"]
    if r["locations"]:
        top = r["locations"][0]
        where = f"{_short_path(top['file'])}:{top['line']}" if top["file"] else "no Python frame"
        lines.append(f"most of it made at {top['function']} ({where})")
    return lines


def _locations_table(table_cls: Any, title: str, names: tuple[str, str], rows: list) -> Any:
    table = table_cls(title=title, title_justify="left")
    for name in names:
        table.add_column(name, overflow="fold", min_width=16)
    for column in ("bytes", "count", "leaked", "leaked n"):
        table.add_column(column, justify="right", no_wrap=True)
    for first, second, e in rows:
        table.add_row(first, second, _size(e["bytes"]), str(e["count"]),
                      _size(e["leaked_bytes"]), str(e["leaked_count"]))
    return table
