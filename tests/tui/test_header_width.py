"""The header at any width: the command is cut from the left (its script name and arguments
stay), and rates, the peak's time, "native" and RSS go before the script's name (issue 18)."""

from __future__ import annotations

import pytest

from memtrace_core.model.session import Summary
from memtrace_tui.header import header_content, script_tail

COMMAND = "python /work/project/benchmarks/workloads/pandas_merge.py --rounds 40"


def summary(**changes) -> Summary:
    fields = dict(pid=123456, command=COMMAND, status="running", elapsed_s=12.3,
                  heap_bytes=125 << 20, peak_bytes=130 << 20, peak_time_s=10.5,
                  allocs_per_s=3800.0, records_per_s=7600.0, pending_symbols=0, records=10,
                  native=True, sample_bytes=0)
    fields.update(changes)
    return Summary(**fields)


def test_script_tail():
    assert script_tail("python /a/b/churn.py 30") == "…churn.py 30"
    assert script_tail("python -X dev /a/b/churn.py") == "…churn.py"
    assert script_tail("python -m package.tool --fast") == "…package.tool --fast"
    assert script_tail("prog") == "prog"
    assert script_tail("sample_app.py --rows 1000") == "sample_app.py --rows 1000"
    assert script_tail("/usr/bin/prog -v x") == "…prog -v x"


@pytest.mark.parametrize("width", range(60, 161, 2))
def test_the_script_name_goes_after_rates_rss_and_native(width):
    text = header_content(summary(), width, rss=140 << 20).plain
    assert len(text) <= width
    assert "heap 125.0 MiB" in text and "peak 130.0 MiB" in text
    name = "pandas_merge.py --rounds 40"
    core = len("pid 123456  running 12.3s  heap 125.0 MiB  peak 130.0 MiB")
    if width >= core + len("  …" + name):  # room for the name: no optional piece takes it
        assert name in text, text
    for optional in ("allocs/s", "rec/s"):  # rates only once the whole command shows
        if optional in text:
            assert COMMAND in text, text


def test_at_80_columns_the_command_is_cut_from_the_left():
    command = "python /work/project/benchmarks/workloads/pandas_merge.py"
    text = header_content(summary(command=command), 80, rss=140 << 20).plain
    assert text.startswith("pid 123456  …") and "pandas_merge.py  running" in text
    assert "allocs/s" not in text and "rec/s" not in text and "rss" not in text


def test_names_pending_stays_before_the_script_name():
    text = header_content(summary(pending_symbols=37), 78).plain
    assert "names pending 37" in text


def test_reserved_address_space_is_said_apart_from_the_heap():
    """An allocator's arena (Arrow's mimalloc reserves 1 GiB) is not heap: the header says
    it after RSS when there is room, and never in the heap or peak figures."""
    wide = header_content(summary(reserved_bytes=1 << 30), 200, rss=140 << 20).plain
    assert "heap 125.0 MiB" in wide and "peak 130.0 MiB" in wide
    assert "rss 140.0 MiB  reserved 1.0 GiB" in wide, wide
    assert "reserved" not in header_content(summary(), 200, rss=140 << 20).plain
    name = "pandas_merge.py --rounds 40"
    core = len("pid 123456  running 12.3s  heap 125.0 MiB  peak 130.0 MiB")
    for width in range(60, 161, 2):  # it never takes the script name's room
        text = header_content(summary(reserved_bytes=1 << 30), width).plain
        assert len(text) <= width
        if width >= core + len("  …" + name):
            assert name in text, text
