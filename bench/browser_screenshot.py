"""The README's screenshot of the console in a browser: screenshots/browser-console.png.

    python bench/browser_screenshot.py                 # needs chromium and chromedriver
    python bench/browser_screenshot.py --out /tmp/shot.png --seconds 20

Starts a node under the demo load (``taskdeck run --headless``, 4 workers) and
``taskdeck serve --console`` on a fresh store in a temporary directory, opens
``/console/?token=…`` in headless Chromium (1600×1000) with a write token, waits until
the dashboard shows the node and finished tasks (and ``--seconds`` of history for the
graphs) and for the Queue panel's rows, and takes the screenshot; prints its path and
size as JSON.
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/: its http.py would hide the standard library's

from tests.browser_helpers import chromium, wait_for_screen  # noqa: E402
from tests.cli_helpers import COMMAND, cli_env  # noqa: E402
from tests.http_helpers import TOKENS_ENV, WRITE_TOKEN, free_port, wait_for_port  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots" / "browser-console.png")
    parser.add_argument("--seconds", type=float, default=15, help="demo load before the shot")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as where:
        store, port = "demo.db", free_port()
        env = cli_env(TOKENS_ENV)
        quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL}
        node = subprocess.Popen(
            [*COMMAND, "run", "--headless", "--workers", "4", "--store", store],
            cwd=where, env=env, stderr=subprocess.DEVNULL, **quiet,
        )  # fmt: skip
        server = subprocess.Popen(
            [*COMMAND, "serve", "--console", "--store", store, "--port", str(port)],
            cwd=where, env=env, stderr=subprocess.PIPE, text=True, **quiet,
        )  # fmt: skip
        try:
            wait_for_port(port, server)
            started = time.monotonic()
            with chromium(1600, 1000) as page:
                page.get(f"http://127.0.0.1:{port}/console/?token={WRITE_TOKEN}")
                wait_for_screen(page, lambda s: "1 alive" in s, 30, "the node")
                time.sleep(max(0.0, args.seconds - (time.monotonic() - started)))
                wait_for_screen(page, rows_loaded, 20, "the Queue panel's rows")
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.save_screenshot(str(args.out))
        finally:
            for process in (server, node):
                process.terminate()
                process.wait(timeout=20)
    width, height = struct.unpack(">II", args.out.read_bytes()[16:24])  # the PNG's IHDR
    print(json.dumps({"screenshot": str(args.out), "size": [width, height]}))


def rows_loaded(screen: str) -> bool:
    """The Queue panel lists tasks (not the placeholders of rows still loading)."""
    return "Succeeded" in screen and "\n  …" not in screen and "│ …" not in screen


if __name__ == "__main__":
    main()
