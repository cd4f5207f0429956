"""The browser console in a real headless Chromium (Debian's ``chromium`` and
``chromedriver``, driven by selenium): open it, read the terminal's text, press keys.

The console draws into xterm.js (on a canvas: its text is not in the DOM), so a script
installed before the page's own reads xterm's buffer: textual.js keeps its Terminal on
an object that has no ``fitAddon`` of its own when the constructor sets one; a setter
for that name on ``Object.prototype`` sees that object, files it in
``window.__taskdeckTerminals`` and then stores the value as usual.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

HOOK = """
Object.defineProperty(Object.prototype, "fitAddon", {
  configurable: true,
  set(value) {
    if (this.terminal) (window.__taskdeckTerminals = window.__taskdeckTerminals || []).push(this);
    Object.defineProperty(this, "fitAddon", {value, writable: true, configurable: true});
  },
});
"""
SCREEN = """
const all = window.__taskdeckTerminals || [];
if (!all.length) return null;
const buffer = all[0].terminal.buffer.active, lines = [];
for (let y = 0; y < buffer.length; y++) lines.push(buffer.getLine(y).translateToString(true));
return lines.join("\\n");
"""


def have_chromium() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


@contextmanager
def chromium(width: int = 1600, height: int = 1000) -> Iterator[webdriver.Chrome]:
    """A headless Chromium whose pages get :data:`HOOK` before their own scripts."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": HOOK})
        yield driver
    finally:
        driver.quit()


def screen_text(driver: webdriver.Chrome) -> str:
    """What the console shows now ("" before it drew)."""
    text: Any = driver.execute_script(SCREEN)
    return text if isinstance(text, str) else ""


def wait_for_screen(
    driver: webdriver.Chrome, check: Callable[[str], bool], seconds: float = 20, what: str = ""
) -> str:
    """The screen's text once ``check`` holds on it (polled: the page is another process)."""
    deadline = time.monotonic() + seconds
    while True:
        text = screen_text(driver)
        if check(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}:\n{text}")
        time.sleep(0.05)


def press(driver: webdriver.Chrome, *keys: str) -> None:
    """Keys to the focused terminal (xterm's hidden textarea has the focus)."""
    ActionChains(driver).send_keys(*keys).perform()
