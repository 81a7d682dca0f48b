"""Ground truth of tests/report/creport.c and helpers of the reporter tests (no fixtures)."""

from __future__ import annotations

import subprocess
import sysconfig
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "creport.c"
CFLAGS = ["-g", "-O1", "-fPIC", "-shared", "-Wall"]

LEAK_BLOCKS = [3000017 + 1009 * i for i in range(3)]
SCRATCH_BLOCKS = [2000003] * 3
SPIKE = 67108879

PROGRAM = """\
import mtreport


def work():
    mtreport.leak()  # @leak


def peak():
    mtreport.spike()  # @spike


work()  # @work
peak()  # @peak
"""


def c_markers() -> dict[str, int]:
    """Line numbers of `/* @name */` markers in creport.c."""
    out = {}
    for number, text in enumerate(SOURCE.read_text().splitlines(), start=1):
        if "/* @" in text:
            out[text.split("/* @", 1)[1].split("*/", 1)[0].strip()] = number
    return out


def py_markers(source: str) -> dict[str, int]:
    return {text.rsplit("# @", 1)[1].strip(): n
            for n, text in enumerate(source.splitlines(), start=1) if "# @" in text}


def build_extension(out_dir: Path, *defines: str) -> Path:
    """gcc the extension into out_dir as an importable `mtreport` module."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"mtreport{sysconfig.get_config_var('EXT_SUFFIX')}"
    include = sysconfig.get_paths()["include"]
    args = ["gcc", *CFLAGS, *defines, f"-I{include}", str(SOURCE), "-o", str(target)]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed:\n{proc.stderr}", pytrace=False)
    return target



# -- reading the outputs back ----------------------------------------------------------------


def parse_folded(text: str) -> list[tuple[list[str], int]]:
    """`a;b;c 123` lines -> ([a, b, c], 123)."""
    out = []
    for line in text.splitlines():
        stack, _, value = line.rpartition(" ")
        out.append((stack.split(";"), int(value)))
    return out


def flamegraph_data(html: str) -> dict:
    """The JSON the flame graph page embeds."""
    import json
    import re

    m = re.search(r'<script id="profile-data" type="application/json">(.*?)</script>', html,
                  re.S)
    assert m, "no profile data in the page"
    return json.loads(m.group(1).replace("<\\/", "</"))


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def decode_message(data: bytes) -> dict[int, list]:
    """Protobuf wire format -> {field: [int | bytes, ...]} (varint and length fields)."""
    out: dict[int, list] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value = data[pos:pos + size]
            pos += size
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        out.setdefault(field, []).append(value)
    return out


def packed(values: list) -> list[int]:
    """A repeated varint field, packed or not."""
    out: list[int] = []
    for v in values:
        if isinstance(v, int):
            out.append(v)
        else:
            pos = 0
            while pos < len(v):
                n, pos = _varint(v, pos)
                out.append(n)
    return out


def decode_pprof(data: bytes) -> dict:
    """A gzip'd profile.proto -> sample types, samples (leaf-first function-name stacks,
    values) and the string table."""
    import gzip

    msg = decode_message(gzip.decompress(data))
    strings = [b.decode() for b in msg.get(6, [])]
    types = []
    for raw in msg.get(1, []):
        vt = decode_message(raw)
        types.append((strings[vt.get(1, [0])[0]], strings[vt.get(2, [0])[0]]))
    functions = {}
    for raw in msg.get(5, []):
        fn = decode_message(raw)
        functions[fn[1][0]] = (strings[fn.get(2, [0])[0]], strings[fn.get(4, [0])[0]])
    locations = {}
    for raw in msg.get(4, []):
        loc = decode_message(raw)
        lines = []
        for line_raw in loc.get(4, []):
            line = decode_message(line_raw)
            name, file = functions[line[1][0]]
            lines.append((name, file, line.get(2, [0])[0]))
        locations[loc[1][0]] = lines
    samples = []
    for raw in msg.get(2, []):
        sample = decode_message(raw)
        frames = []
        for lid in packed(sample.get(1, [])):
            frames.extend(locations[lid])  # each location's lines innermost first
        samples.append((frames, packed(sample.get(2, []))))
    mappings = [decode_message(raw) for raw in msg.get(3, [])]
    return {"types": types, "samples": samples, "strings": strings,
            "mappings": [strings[m.get(5, [0])[0]] for m in mappings],
            "default_type": strings[msg[14][0]] if 14 in msg else ""}
