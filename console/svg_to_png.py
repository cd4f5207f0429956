"""Turn the console's SVG screenshots into PNGs, with whatever renderer is installed.

A headless Chromium is preferred: it lays out the SVG's text like a browser does, so
columns line up. ``rsvg-convert`` (Debian: librsvg2-bin) and CairoSVG also work but
drop the leading spaces of styled text runs, which shifts some cells a little.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
VIEWBOX = re.compile(r'viewBox="0 0 ([\d.]+) ([\d.]+)"')


def svg_size(svg: Path) -> tuple[int, int]:
    """The pixel size of a Rich/Textual SVG, from its ``viewBox``."""
    match = VIEWBOX.search(svg.read_text(encoding="utf-8")[:2000])
    if match is None:
        raise ValueError(f"{svg} has no viewBox: not a Textual screenshot?")
    return round(float(match[1])), round(float(match[2]))


def with_browser(browser: str, svg: Path, png: Path) -> None:
    width, height = svg_size(svg)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={png}",
                svg.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )


def to_png(svg: Path) -> Path | None:
    """Render ``svg`` to a PNG next to it; None when no renderer is installed."""
    png = svg.with_suffix(".png")
    browser = next((b for b in BROWSERS if shutil.which(b)), None)
    if browser is not None:
        try:
            with_browser(browser, svg, png)
            return png
        except (subprocess.SubprocessError, OSError) as exc:
            log.warning("%s could not render %s (%s); trying rsvg-convert", browser, svg, exc)
    if shutil.which("rsvg-convert"):
        subprocess.run(["rsvg-convert", "-o", str(png), str(svg)], check=True, timeout=60)
        return png
    try:
        import cairosvg  # type: ignore[import-not-found]
    except ImportError:
        return None
    cairosvg.svg2png(url=str(svg), write_to=str(png))
    return png
