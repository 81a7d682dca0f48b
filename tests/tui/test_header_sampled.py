"""The header of a sampled capture marks its figures as estimates and says how it sampled."""

from __future__ import annotations

from memtrace_core.model.session import Summary
from memtrace_tui.header import header_content


def summary(sample_bytes: int) -> Summary:
    return Summary(pid=42, command="python prog.py", status="running", elapsed_s=1.0,
                   heap_bytes=3 << 20, peak_bytes=5 << 20, peak_time_s=0.5,
                   allocs_per_s=0.0, records_per_s=0.0, pending_symbols=0, records=10,
                   native=False, sample_bytes=sample_bytes, peak_by_s=0.75)


def test_sampled_header_marks_estimates():
    text = header_content(summary(512 << 10), 120).plain
    assert "heap ≈ 3.0 MiB" in text and "peak ≈ 5.0 MiB by 0.75s" in text  # the next tick
    assert "sampled every ~512 KiB" in text
    # on a narrow terminal the mark stays (it is part of the figures)
    assert "≈" in header_content(summary(512 << 10), 40).plain


def test_exact_header_has_no_mark():
    text = header_content(summary(0), 120).plain
    assert "≈" not in text and "sampled" not in text
    assert "peak 5.0 MiB at 0.50s" in text
