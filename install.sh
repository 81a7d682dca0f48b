#!/usr/bin/env bash
# Install memtrace and everything it needs on Debian (system packages, a virtualenv in .venv,
# the package built from this checkout with its test tools), then profile the example.
# Usage: bash install.sh            (root, or a user with sudo)
#        PYTHON=/path/to/python3.12 VENV=.venv-3.12 EXTRAS=test bash install.sh
#                                   (another CPython 3.10-3.13 in its own virtualenv)
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
VENV="${VENV:-.venv}"
EXTRAS="${EXTRAS:-test,bench}"

# gdb for attach; elfutils, libc6-dbg, dwz, clang and llvm for the symbolizer's differential
# tests (eu-addr2line, build-id debug files, dwz and clang-built DWARF, llvm-symbolizer);
# golang-go and chromium are the exports' real consumers in the tests (`go tool pprof`
# opens the pprof export, headless Chromium runs the flame graph page's script).
packages="build-essential pkg-config libunwind-dev libzstd-dev gdb elfutils tmux libc6-dbg dwz clang llvm golang-go chromium"
missing=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if ! "$PY" -c "import venv, ensurepip" >/dev/null 2>&1; then missing="$missing python3-venv"; fi
# the tracer reads the interpreter's frames through CPython's internal headers
if ! "$PY" -c "import os, sysconfig; assert os.path.isdir(os.path.join(sysconfig.get_paths()['include'], 'internal'))" >/dev/null 2>&1; then
  missing="$missing python3-dev"
fi
if [ -n "$missing" ]; then
  echo "installing system packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
quiet() { grep -v -e '^WARNING: Location' -e '^$' || true; }
"$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | quiet
"$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]" 2>&1 | quiet
"$VENV/bin/memtrace" --version

if [ "${MEMTRACE_SKIP_EXAMPLE:-0}" != 1 ]; then
  echo
  echo "== memtrace run examples/leaky.py"
  "$VENV/bin/memtrace" run --force -o /tmp/memtrace-example.mtrace examples/leaky.py
  echo
  echo "== memtrace stats"
  "$VENV/bin/memtrace" stats /tmp/memtrace-example.mtrace
fi
