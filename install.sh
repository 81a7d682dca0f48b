#!/usr/bin/env bash
# Install memtrace and everything it needs on Debian (system packages, a virtualenv in .venv,
# the package built from this checkout with its test tools), then profile the example.
# Usage: bash install.sh            (root, or a user with sudo)
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

# gdb for attach; elfutils, libc6-dbg, dwz, clang and llvm for the symbolizer's differential
# tests (eu-addr2line, build-id debug files, dwz and clang-built DWARF, llvm-symbolizer).
packages="build-essential pkg-config libunwind-dev libzstd-dev gdb elfutils tmux libc6-dbg dwz clang llvm"
missing=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if ! "$PY" -c "import venv, ensurepip" >/dev/null 2>&1; then missing="$missing python3-venv"; fi
if ! "$PY" -c "import os, sysconfig; assert os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'internal', 'pycore_frame.h'))" >/dev/null 2>&1; then
  missing="$missing python3-dev"
fi
if [ -n "$missing" ]; then
  echo "installing system packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
quiet() { grep -v -e '^WARNING: Location' -e '^$' || true; }
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | quiet
.venv/bin/python -m pip install -q -e '.[test,bench]' 2>&1 | quiet
.venv/bin/memtrace --version

if [ "${MEMTRACE_SKIP_EXAMPLE:-0}" != 1 ]; then
  echo
  echo "== memtrace run examples/leaky.py"
  .venv/bin/memtrace run --force -o /tmp/memtrace-example.mtrace examples/leaky.py
  echo
  echo "== memtrace stats"
  .venv/bin/memtrace stats /tmp/memtrace-example.mtrace
fi
