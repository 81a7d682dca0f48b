"""Bad input to `memtrace run`: one line on stderr, a non-zero exit status (python's own for
a missing script, 2), no traceback."""

from __future__ import annotations

import pytest


def _one_line_error(proc, status: int = 1) -> str:
    text = proc.stderr.decode()
    assert proc.returncode == status, text
    assert b"Traceback" not in proc.stderr, text
    assert len(text.strip().splitlines()) == 1, text
    return text


@pytest.mark.parametrize(
    "args,status",
    [(["missing.py"], 2), (["-m", "no_such_module_xyz"], 1), (["-m", "no_such_pkg_xyz.sub"], 1)],
    ids=["script", "module", "submodule"],
)
def test_missing_target(tmp_path, mt, args, status):
    proc = mt.cli("run", "-o", str(tmp_path / "x.mtrace"), *args, cwd=tmp_path)
    _one_line_error(proc, status)
    assert proc.stdout == b""
    assert not (tmp_path / "x.mtrace").exists()


def test_existing_output_needs_force(tmp_path, mt):
    (tmp_path / "ok.py").write_text("print('ran')\n")
    out = tmp_path / "taken.mtrace"
    out.write_bytes(b"precious")
    proc = mt.cli("run", "-o", str(out), "ok.py", cwd=tmp_path)
    text = _one_line_error(proc)
    assert "taken.mtrace" in text
    assert proc.stdout == b"", "the program ran although the output could not be written"
    assert out.read_bytes() == b"precious"
    forced = mt.cli("run", "-o", str(out), "--force", "ok.py", cwd=tmp_path)
    assert forced.returncode == 0 and forced.stdout == b"ran\n"
    assert out.read_bytes()[:7] == b"MEMTRAC"  # MEMTRACE, or MEMTRACZ when compressed
    assert mt.stats(out)["complete"] is True


def test_unwritable_output(tmp_path, mt):
    (tmp_path / "ok.py").write_text("print('ran')\n")
    proc = mt.cli("run", "-o", str(tmp_path / "no" / "such" / "dir.mtrace"), "ok.py", cwd=tmp_path)
    _one_line_error(proc)
    assert proc.stdout == b""
