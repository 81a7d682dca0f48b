"""Regenerate screenshots/*.svg: the live screen under `--native` on a numpy example, the
top-locations table, the detail pane and the Δ mark metric a few seconds after `b`
(Textual's own SVG export).

    python screenshots/make_screenshots.py

It really runs screenshots/numpy_example.py under the tracer (the same runner, pipe, feed
and app as `memtrace live --native`), waits for native names, then drives the keys.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from memtrace_core.model.build import call_tree  # noqa: E402
from memtrace_core.model.feed import enlarge_pipe  # noqa: E402
from memtrace_core.model.session import Session  # noqa: E402
from memtrace_core.reader import StreamReader  # noqa: E402
from memtrace_tui.app import MemtraceApp  # noqa: E402
from memtrace_tui.live_controller import LiveController  # noqa: E402

SIZE = (130, 40)


async def shoot(app: MemtraceApp, session: Session) -> None:
    async with app.run_test(size=SIZE) as pilot:
        start = time.monotonic()
        while time.monotonic() < start + 60:  # a few seconds of data, every name in
            await asyncio.sleep(0.25)
            with session.lock:
                ready = not session.tree.pending_names() and not session.tree.busy
            if ready and time.monotonic() > start + 6:
                break
        await asyncio.sleep(0.5)
        await pilot.press("home", "e")  # the hottest path from the top row
        await asyncio.sleep(0.5)
        app.save_screenshot("live_native_tree.svg", path=str(HERE))
        await pilot.press("v")
        await asyncio.sleep(0.5)
        app.save_screenshot("table_view.svg", path=str(HERE))
        await pilot.press("v", "up", "up", "up", "up", "up")  # numpy's `ones` (Python)
        await asyncio.sleep(0.3)
        app.save_screenshot("detail_pane.svg", path=str(HERE))
        await pilot.press("d", "b")  # mark now: what the program keeps from here on
        await asyncio.sleep(3)
        await pilot.press("home", "e")
        await asyncio.sleep(0.5)
        app.save_screenshot("since_mark.svg", path=str(HERE))
        app.controller.stop_program()


def main() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    read_fd, write_fd = os.pipe()
    enlarge_pipe(read_fd)
    log = HERE / "numpy_example.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "memtrace_core.tracer.runner", "--fd", str(write_fd),
             "--native", str(HERE / "numpy_example.py"), "30"],
            pass_fds=[write_fd], stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
            cwd=HERE, start_new_session=True)
    os.close(write_fd)
    reader = StreamReader()
    tree = call_tree(reader, native=True)
    session = Session(reader, tree, live=True)
    session.log_path = "numpy_example.log"
    controller = LiveController(proc, read_fd, session, log_path=session.log_path)
    try:
        asyncio.run(shoot(MemtraceApp(session, controller), session))
    finally:
        if proc.poll() is None:
            proc.kill()
        tree.close()
        log.unlink(missing_ok=True)
    print("wrote", *sorted(p.name for p in HERE.glob("*.svg")))


if __name__ == "__main__":
    main()
