"""Byte sizes have one home (memtrace_core/sizes.py): the options that take a size and every
report that prints one agree with it."""

from __future__ import annotations

import pytest

from memtrace_core.report.tree import parse_threshold
from memtrace_core.sampling import parse_sample_bytes
from memtrace_core.sizes import format_bytes, format_signed, parse_size


@pytest.mark.parametrize(("text", "n"), [("4096", 4096), ("10KiB", 10240), ("2MB", 2_000_000),
                                         ("1.5 MiB", 1572864), ("3gib", 3 << 30), ("7 b", 7)])
def test_one_size_parser(text, n):
    assert parse_size(text) == n
    assert parse_threshold(text, total_bytes=1) == n
    assert parse_sample_bytes(text) == n


@pytest.mark.parametrize("text", ["", "12zz", "-5", "1e3", "KiB", "9" * 400, "9" * 320 + "GiB"])
def test_not_a_size(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_formatting():
    assert [format_bytes(n) for n in (0, 1023, 1024, 1536, 5 << 20, 3 << 40, 5000 << 40)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "5.0 MiB", "3.0 TiB", "5000.0 TiB"]
    assert [format_signed(n) for n in (-700, 0, 2048)] == ["-700 B", "±0 B", "+2.0 KiB"]


@pytest.mark.parametrize("text", ["9" * 400, "9" * 400 + "ms"])
def test_an_instant_too_far_is_one_line_of_error(text):
    from memtrace_core.errors import UserError
    from memtrace_core.report.diff import parse_instant

    with pytest.raises(UserError):
        parse_instant(text, "--from")
