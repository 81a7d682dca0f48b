"""Portable captures: a `--native` capture carries the names of its native frames, so with
the C library moved away and an empty symbol cache every report and `view` still show the
C function, its inlined helper, file and line; `--no-names` captures show `lib+0xoffset`
with the library-changed note until `memtrace symbolize` names them; a capture cut off
mid-run can be symbolized; a damaged or newer names section is one warning and local
naming; long reads show a progress bar on a terminal and nothing when piped."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memtrace_core.frames import FrameKind
from memtrace_core.reader import read_capture, read_names
from tests.cli import MEMTRACE, memtrace_env, run_memtrace
from tests.report.report_support import LEAK_BLOCKS, PROGRAM, SOURCE, build_extension, c_markers


@pytest.fixture
def private(reports, tmp_path):
    """A private build of the extension (so it can be moved away) and a fresh cache."""
    ext = build_extension(tmp_path / "ext")
    env = dict(reports.env, XDG_CACHE_HOME=str(tmp_path / "cache-where-recorded"))
    env["PYTHONPATH"] = os.pathsep.join([str(ext.parent), env.get("PYTHONPATH", "")])
    (tmp_path / "prog.py").write_text(PROGRAM)

    def cli(*args: str, cache: str = "cache-where-recorded", **extra: str):
        run_env = dict(env, XDG_CACHE_HOME=str(tmp_path / cache), **extra)
        return run_memtrace(*args, cwd=tmp_path, env=run_env, timeout=180, text=True)

    return ext, cli


def table_rows(cli, capture: Path, cache: str) -> dict[str, dict]:
    proc = cli("table", "--json", "--leaks", str(capture), cache=cache)
    assert proc.returncode == 0, proc.stderr
    return {r["function"]: r for r in json.loads(proc.stdout)["rows"]}


def move_away(ext: Path) -> Path:
    gone = ext.with_name(ext.name + ".moved")
    ext.rename(gone)
    return gone


def test_names_travel_with_the_capture(private, tmp_path):
    ext, cli = private
    capture = tmp_path / "prog.mtrace"
    proc = cli("run", "--native", "-o", str(capture), "prog.py")
    assert proc.returncode == 0, proc.stderr
    assert "native addresses in" in proc.stderr
    names = read_names(capture)
    assert names is not None and len(names) > 0 and names.warning is None
    here = table_rows(cli, capture, "cache-where-recorded")
    folded_here = cli("export", "--format", "folded", "--leaks", str(capture), "-o", "-",
                      cache="cache-where-recorded").stdout
    move_away(ext)
    there = table_rows(cli, capture, "empty-cache-elsewhere")
    c = c_markers()
    inline = there["rep_inline_alloc"]
    assert (inline["kind"], inline["file"], inline["line"]) == (
        "inline", str(SOURCE), c["inline_malloc"])
    assert (inline["own_bytes"], inline["own_count"]) == (sum(LEAK_BLOCKS), len(LEAK_BLOCKS))
    assert there["rep_outer"]["kind"] == "native"
    assert {k: (v["kind"], v["file"], v["line"], v["own_bytes"]) for k, v in there.items()} \
        == {k: (v["kind"], v["file"], v["line"], v["own_bytes"]) for k, v in here.items()}
    folded_there = cli("export", "--format", "folded", "--leaks", str(capture), "-o", "-",
                       cache="empty-cache-elsewhere")
    assert folded_there.returncode == 0, folded_there.stderr
    assert folded_there.stdout == folded_here
    assert "library changed" not in folded_there.stderr + folded_there.stdout
    stats = json.loads(cli("stats", "--json", str(capture), cache="empty-cache-elsewhere").stdout)
    top = {r["function"] for r in stats["top_native_locations"]}
    assert "rep_inline_alloc" in top
    assert not (tmp_path / "empty-cache-elsewhere" / "memtrace").exists() or not any(
        (tmp_path / "empty-cache-elsewhere" / "memtrace").iterdir()), "the cache was used"


def test_view_opens_named_without_the_library(private, tmp_path):
    ext, cli = private
    capture = tmp_path / "prog.mtrace"
    assert cli("run", "--native", "-o", str(capture), "prog.py").returncode == 0
    move_away(ext)
    from memtrace_core.model.build import session_for_capture

    session = session_for_capture(capture, cache_dir=tmp_path / "empty-view-cache")
    try:
        tree = session.tree
        frames = {f.function: f for f in tree.core.frames if f is not None}
        assert frames["rep_inline_alloc"].kind is FrameKind.INLINE
        assert frames["rep_inline_alloc"].file == str(SOURCE)
        assert tree.pending_names() == 0  # nothing to wait for: every name came with it
        assert not any(f.kind is FrameKind.UNRESOLVED for f in frames.values())
    finally:
        tree.close()


def test_no_names_then_symbolize(private, tmp_path):
    ext, cli = private
    capture = tmp_path / "prog.mtrace"
    proc = cli("run", "--native", "--no-names", "-o", str(capture), "prog.py")
    assert proc.returncode == 0, proc.stderr
    assert read_names(capture) is None
    gone = move_away(ext)
    table = cli("table", "--leaks", str(capture), cache="empty-1")
    assert table.returncode == 0
    assert "library changed" in table.stderr and "rep_inline_alloc" not in table.stdout
    gone.rename(ext)
    proc = cli("symbolize", str(capture), cache="empty-2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("memtrace: named ")
    move_away(ext)
    rows = table_rows(cli, capture, "empty-3")
    assert rows["rep_inline_alloc"]["own_bytes"] == sum(LEAK_BLOCKS)
    reader = read_capture(capture)  # the stream itself is untouched and complete
    assert reader.complete and reader.error is None
    stats = cli("stats", "--json", str(capture), cache="empty-3")
    assert stats.returncode == 0 and json.loads(stats.stdout)["complete"] is True


def test_truncated_capture_can_be_symbolized(private, tmp_path):
    ext, cli = private
    capture = tmp_path / "slow.mtrace"
    (tmp_path / "slow.py").write_text(
        "import time\nimport mtreport\nmtreport.leak()\ntime.sleep(0.5)\n"
        "keep = [bytearray(1000) for _ in range(100)]\ntime.sleep(0.5)\n")
    assert cli("run", "--native", "--no-names", "-o", str(capture), "slow.py").returncode == 0
    data = capture.read_bytes()
    cut = tmp_path / "cut.mtrace"
    cut.write_bytes(data[: len(data) - 64])  # the last flush (the TRAILER) never made it
    reader = read_capture(cut)
    assert not reader.complete and any(nat for _py, nat, *_ in reader.stacks())
    proc = cli("symbolize", str(cut))
    assert proc.returncode == 0, proc.stderr
    names = read_names(cut)
    assert names is not None and len(names) > 0
    move_away(ext)
    proc = cli("table", "--json", "--sort", "total", str(cut), cache="empty")
    assert proc.returncode == 0, proc.stderr
    kinds = {r["kind"] for r in json.loads(proc.stdout)["rows"]}
    assert "native" in kinds and "unresolved" not in kinds
    assert "incomplete" in proc.stderr


def test_damaged_or_newer_section_is_one_warning_and_local_names(private, tmp_path):
    ext, cli = private
    capture = tmp_path / "prog.mtrace"
    assert cli("run", "--native", "-o", str(capture), "prog.py").returncode == 0
    data = bytearray(capture.read_bytes())
    from memtrace_core.reader import names_section

    start = names_section.stream_end(str(capture))
    damaged = tmp_path / "damaged.mtrace"
    bad = bytearray(data)
    for i in range(start + 40, start + 60):
        bad[i] ^= 0xFF
    damaged.write_bytes(bytes(bad))
    proc = cli("table", "--json", "--leaks", str(damaged))
    assert proc.returncode == 0, proc.stderr
    warnings = [x for x in proc.stderr.splitlines() if "names section" in x]
    assert len(warnings) == 1 and "damaged names section" in warnings[0]
    rows = {r["function"]: r for r in json.loads(proc.stdout)["rows"]}
    assert rows["rep_inline_alloc"]["kind"] == "inline"  # named here, the library is present
    newer = tmp_path / "newer.mtrace"
    bad = bytearray(data)
    bad[start + 7] = names_section.VERSION + 1
    newer.write_bytes(bytes(bad))
    proc = cli("stats", str(newer))
    assert proc.returncode == 0
    assert f"names section is version {names_section.VERSION + 1}" in proc.stderr


def _version_1_section(names) -> bytes:
    """A names section as memtrace wrote it before version 2 (nested lists of strings)."""
    import struct

    import msgpack
    import zstandard

    modules: dict[tuple[str, str | None], list] = {}
    for (path, build_id, vaddr), frames in sorted(names.frames.items(),
                                                  key=lambda kv: (kv[0][0], kv[0][2])):
        modules.setdefault((path, build_id), []).append(
            [vaddr, [[f.function, f.file, f.line, f.kind.value, f.module] for f in frames]])
    payload = zstandard.ZstdCompressor(level=6, write_content_size=True).compress(
        msgpack.packb({"modules": [[p, b, e] for (p, b), e in modules.items()],
                       "host": names.host, "created": names.created}, use_bin_type=True))
    return struct.pack("<7sBQ", b"MTNAMES", 1, len(payload)) + payload


def test_a_version_1_section_still_names_the_capture_elsewhere(private, tmp_path):
    """Captures named before the columnar section (version 2) keep their names: the same
    frames read from either version, and the reports elsewhere are the same."""
    from memtrace_core.reader import names_section

    ext, cli = private
    capture = tmp_path / "prog.mtrace"
    assert cli("run", "--native", "-o", str(capture), "prog.py").returncode == 0
    current = read_names(capture)
    assert current is not None and current.warning is None and len(current) > 0
    assert capture.read_bytes()[names_section.stream_end(str(capture)) + 7] == 2
    old = tmp_path / "old.mtrace"
    old.write_bytes(capture.read_bytes())
    names_section.append(str(old), _version_1_section(current))
    assert old.read_bytes()[names_section.stream_end(str(old)) + 7] == 1
    read_back = read_names(old)
    assert read_back is not None and read_back.warning is None
    assert read_back.frames == current.frames and read_back.host == current.host
    here = table_rows(cli, capture, "cache-where-recorded")
    move_away(ext)
    there = table_rows(cli, old, "empty-cache-elsewhere")
    assert there == here


def _stderr_on_a_terminal(cli_args: list[str], env: dict[str, str], cwd: Path) -> str:
    master, slave = pty.openpty()
    proc = subprocess.Popen(cli_args, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=slave)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=120)
    os.close(master)
    return out.decode("utf-8", "replace")


def test_progress_bar_on_a_terminal_never_in_a_pipe(private, reports, tmp_path):
    ext, cli = private
    capture = tmp_path / "prog.mtrace"
    assert cli("run", "--native", "--no-names", "-o", str(capture), "prog.py").returncode == 0
    env = dict(reports.env, MEMTRACE_PROGRESS_AFTER="0", TERM="xterm-256color")
    args = [*MEMTRACE, "stats", str(capture)]
    on_tty = _stderr_on_a_terminal(args, env, tmp_path)
    assert "memtrace: reading the capture" in on_tty and "━" in on_tty
    piped = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert piped.returncode == 0 and piped.stderr == ""
    named = _stderr_on_a_terminal([*MEMTRACE, "symbolize",
                                   str(capture)], env, tmp_path)
    assert "naming native frames" in named


def test_symbolize_leaves_no_temporary_file(private, tmp_path):
    """symbolize writes beside the capture and renames: no temporary file is left."""
    ext, cli = private
    capture = tmp_path / "prog.mtrace"
    assert cli("run", "--native", "-o", str(capture), "prog.py").returncode == 0
    assert cli("symbolize", str(capture)).returncode == 0
    assert cli("symbolize", str(capture)).returncode == 0  # the section is replaced, once
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".memtrace-")]
    assert leftovers == []
    data = capture.read_bytes()
    assert data.count(b"MTNAMEND") == 1


def test_plain_capture_becomes_compressed_when_named(private, tmp_path):
    """A capture in the plain (uncompressed) format, as older attach -o wrote, is converted
    to the compressed container before its names are stored (a plain-file reader would take
    the section for records)."""
    from memtrace_core.reader import COMPRESSED_MAGIC, MAGIC, capture_stream

    ext, cli = private
    capture = tmp_path / "prog.mtrace"
    assert cli("run", "--native", "--no-names", "-o", str(capture), "prog.py").returncode == 0
    plain = tmp_path / "plain.mtrace"
    plain.write_bytes(b"".join(capture_stream(capture)))
    assert plain.read_bytes()[:8] == MAGIC
    before = read_capture(plain)
    assert cli("symbolize", str(plain)).returncode == 0
    assert plain.read_bytes()[:8] == COMPRESSED_MAGIC
    after = read_capture(plain)
    assert (after.records, after.heap_bytes, after.complete) == (
        before.records, before.heap_bytes, True)
    move_away(ext)
    assert table_rows(cli, plain, "empty")["rep_inline_alloc"]["own_bytes"] == sum(LEAK_BLOCKS)


@pytest.mark.parametrize("share_cpu", [False, True], ids=["serial", "names-thread"])
def test_view_asks_the_worker_while_reading_a_no_names_capture(private, tmp_path,
                                                               monkeypatch, share_cpu):
    """`view` of a `--no-names` capture with a cold cache: the worker is given the native
    addresses as they are read, before the tree is built (it used to get them only from
    the build, so the whole tree was built with `lib+0xoffset` and built again as names
    came: view took `tree` + 5.6 s on a pandas capture); names that came while reading
    are final at once. With share_cpu (`view` in a terminal), that work is done on a
    thread of its own while the decoder reads on, with the same outcome."""
    import threading

    from memtrace_core.model.build import session_for_capture
    from memtrace_core.model.calltree import CallTree
    from memtrace_core.symbols.names import Namer

    ext, cli = private
    capture = tmp_path / "prog.mtrace"
    assert cli("run", "--native", "--no-names", "-o", str(capture), "prog.py").returncode == 0
    events: list[tuple[str, int]] = []
    real_prefetch, real_rebuild = Namer.prefetch, CallTree.rebuild

    threads: set[str] = set()

    def prefetch(self, ips):
        events.append(("prefetch", len(ips)))
        if ("build", 0) not in events:
            threads.add(threading.current_thread().name)
        return real_prefetch(self, ips)

    def rebuild(self):
        events.append(("build", 0))
        return real_rebuild(self)

    monkeypatch.setattr(Namer, "prefetch", prefetch)
    monkeypatch.setattr(CallTree, "rebuild", rebuild)
    session = session_for_capture(capture, cache_dir=tmp_path / "cold-cache",
                                  share_cpu=share_cpu)
    tree = session.tree
    try:
        assert threads == ({"memtrace-names"} if share_cpu else {"MainThread"})
        reader = session.reader
        distinct = {ip for sid in range(reader.n_stacks)
                    for ip in reader.native_stack(reader.stack_key(sid)[1])}
        before = [n for kind, n in events[:events.index(("build", 0))] if kind == "prefetch"]
        assert sum(before) == len(distinct) > 0, events  # every address, each once
        for _ in range(600):  # the names still on their way, if any
            tree.update()
            if tree.pending_names() == 0 and not tree.busy:
                break
            time.sleep(0.05)
        assert tree.pending_names() == 0
        frames = {f.function: f for f in tree.core.frames if f is not None}
        inline = frames["rep_inline_alloc"]
        assert (inline.kind, inline.file) == (FrameKind.INLINE, str(SOURCE))
    finally:
        tree.close()


def test_first_names_are_appended_in_place_later_ones_replace_by_copy(private, tmp_path):
    """Naming a capture that has no names yet appends the section to the file itself (the
    stream is not copied: a 170 MB stream took longer to copy than to name); replacing
    names goes through a copy renamed over it. The stream stays byte for byte."""
    ext, cli = private
    capture = tmp_path / "prog.mtrace"
    assert cli("run", "--native", "--no-names", "-o", str(capture), "prog.py").returncode == 0
    stream, inode = capture.read_bytes(), capture.stat().st_ino
    assert cli("symbolize", str(capture)).returncode == 0
    named = capture.read_bytes()
    assert capture.stat().st_ino == inode and named[:len(stream)] == stream
    assert named.count(b"MTNAMEND") == 1 and named.endswith(b"MTNAMEND")
    names = read_names(capture)
    assert names is not None and names.warning is None and len(names) > 0
    assert cli("symbolize", str(capture)).returncode == 0  # replaced: a new file
    again = capture.read_bytes()
    assert capture.stat().st_ino != inode and again[:len(stream)] == stream
    assert again.count(b"MTNAMEND") == 1 and read_names(capture).frames == names.frames
    move_away(ext)
    rows = table_rows(cli, capture, "empty")
    assert rows["rep_inline_alloc"]["own_bytes"] == sum(LEAK_BLOCKS)
    reader = read_capture(capture)
    assert reader.complete and reader.error is None


def test_a_failed_append_leaves_the_capture_as_it_was(private, tmp_path):
    """A names section that cannot be written whole (here the file size limit stops it
    part way) is cut off again: the capture is left exactly as it was."""
    ext, cli = private
    capture = tmp_path / "prog.mtrace"
    assert cli("run", "--native", "--no-names", "-o", str(capture), "prog.py").returncode == 0
    before = capture.read_bytes()
    script = (
        "import errno, os, resource, signal, sys\n"
        "from memtrace_core.frames import Frame, FrameKind\n"
        "from memtrace_core.reader import names_section\n"
        "path = sys.argv[1]\n"
        "names = {('/lib/x.so', None, v): [Frame(os.urandom(40).hex(), 'f.c', v, "
        "FrameKind.NATIVE, 'x.so')] for v in range(200)}\n"
        "section = names_section.encode(names, 'host', 0.0)\n"
        "assert len(section) > 8192\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "limit = os.path.getsize(path) + 4096\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
        "try:\n"
        "    names_section.append(path, section)\n"
        "except OSError as exc:\n"
        "    print(errno.errorcode[exc.errno])\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(capture)], capture_output=True,
                          text=True, timeout=60, env=memtrace_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "EFBIG"
    assert capture.read_bytes() == before
    assert read_names(capture) is None


def test_a_section_without_its_footer_yet_is_no_section(private, tmp_path):
    """What a reader may meet while a section is being appended (or after a crash in it):
    the stream reads complete and exact, without names, at every cut of the section."""
    ext, cli = private
    capture = tmp_path / "prog.mtrace"
    assert cli("run", "--native", "-o", str(capture), "prog.py").returncode == 0
    from memtrace_core.reader import names_section

    data = capture.read_bytes()
    end = names_section.stream_end(str(capture))
    whole = read_capture(capture)
    torn = tmp_path / "torn.mtrace"
    for cut in (end + 1, end + 7, (end + len(data)) // 2, len(data) - 9, len(data) - 1):
        torn.write_bytes(data[:cut])
        assert read_names(torn) is None
        reader = read_capture(torn)
        assert reader.complete and reader.error is None
        assert (reader.records, reader.heap_bytes) == (whole.records, whole.heap_bytes)


def test_naming_sets_off_no_collection_and_restores_the_collector(private, tmp_path):
    """At the exit of `run --native` the traced program's objects are all alive; naming
    must not make the collector walk them over and over (embed disables it meanwhile)."""
    import gc

    from memtrace_core.symbols.embed import embed

    ext, cli = private
    capture = tmp_path / "prog.mtrace"
    proc = cli("run", "--native", "--no-names", "-o", str(capture), "prog.py")
    assert proc.returncode == 0, proc.stderr
    collections: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            collections.append(info["generation"])

    path, cache = str(capture), tmp_path / "cache-embed"
    threshold = gc.get_threshold()
    gc.collect()
    gc.callbacks.append(count)
    gc.set_threshold(1)  # any container allocated would set one off
    try:
        named = embed(path, cache_dir=cache)
        during = len(collections)
        enabled_after = gc.isenabled()
        gc.set_threshold(*threshold)
        assert named > 0 and during == 0
        assert enabled_after
        gc.disable()
        assert embed(path, cache_dir=cache) == named
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()
        gc.set_threshold(*threshold)
        gc.callbacks.remove(count)
    assert named == len(read_names(capture))
