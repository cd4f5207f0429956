"""The console in a browser (``taskdeck serve --console``) in a real headless Chromium:
a node (``run --headless``) and the server run as a user starts them; the page shows
the Queue panel with live counts, ``]`` reaches the node, a read token's console
refuses it, and without a token nothing runs."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.wait import WebDriverWait

from tests.browser_helpers import chromium, have_chromium, press, wait_for_screen
from tests.cli_helpers import COMMAND, cli_env, run
from tests.http_helpers import READ_TOKEN, TOKENS_ENV, WRITE_TOKEN, Served, serving, until_true


def test_chromium_is_installed() -> None:
    """Not a skip when it is missing: CI installs Debian's chromium and chromedriver."""
    assert have_chromium(), "install chromium and chromium-driver (see .ci/run)"


@dataclass
class Cluster:
    """A node with two workers and ``serve --console`` on one store."""

    store: Path
    server: Served
    node: subprocess.Popen[str]

    def workers(self) -> int:
        result = run("nodes", "--json", "--store", str(self.store), cwd=self.store.parent)
        nodes = [n for n in json.loads(result.stdout)["nodes"] if n["state"] == "alive"]
        return int(nodes[0]["workers"]) if nodes else -1

    def enqueue(self, count: int) -> None:
        for n in range(count):
            answer = self.server.post("/api/tasks", {"handler": "ok", "payload": {"n": n}})
            assert answer.status == 201, answer.body

    def sessions(self) -> list[psutil.Process]:
        """The console processes the server runs (one per browser session)."""
        found = []
        for process in psutil.Process(self.server.process.pid).children(recursive=True):
            try:  # one that just quit is gone (or a zombie for a moment)
                if process.status() != psutil.STATUS_ZOMBIE and "console" in process.cmdline():
                    found.append(process)
            except psutil.Error:
                continue
        return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    where = tmp_path_factory.mktemp("browser")
    store = where / "web.db"
    env = {**TOKENS_ENV, "TASKDECK_TEST_STORE": str(store)}
    node = subprocess.Popen(
        [*COMMAND, "run", "--headless", "--app", "tests.http_app:engine"],
        cwd=where,
        env=cli_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        with serving(["serve", "--console", "--store", str(store)], where, env) as server:
            made = Cluster(store, server, node)
            until_true(lambda: made.workers() == 2, what="the node's row")
            yield made
    finally:
        node.terminate()
        node.wait(timeout=15)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


@pytest.fixture
def page(browser: webdriver.Chrome, cluster: Cluster) -> Iterator[webdriver.Chrome]:
    yield browser
    browser.delete_all_cookies()  # the next test signs in afresh
    browser.get("about:blank")  # the session's websocket closes: its console quits
    until_true(lambda: not cluster.sessions(), what="the session's console to quit")


def succeeded(screen: str) -> int | None:
    """The Queue panel's Succeeded count (its tab: "Succeeded 3")."""
    match = re.search(r"Succeeded ([\d,]+)", screen)
    return int(match.group(1).replace(",", "")) if match else None


def test_a_write_token_gives_the_live_console_and_its_keys_reach_the_node(
    cluster: Cluster, page: webdriver.Chrome
) -> None:
    # Given a node that has run three tasks
    cluster.enqueue(3)
    # When the browser opens the console with a write token in the URL
    page.get(f"{cluster.server.url}/console/?token={WRITE_TOKEN}")
    # Then the token left the URL for an HttpOnly cookie
    assert "token" not in page.current_url
    cookie = page.get_cookie("taskdeck_console")
    assert cookie is not None and cookie["httpOnly"]
    # and the Queue panel shows the counts, live: three more tasks show up too
    wait_for_screen(page, lambda s: (succeeded(s) or 0) >= 3, what="3 succeeded")
    cluster.enqueue(3)
    wait_for_screen(page, lambda s: succeeded(s) == 6, what="6 succeeded")
    # When the operator selects the node and presses ]
    press(page, "\t")  # Queue → Nodes
    wait_for_screen(page, lambda s: "] [ w" in s, what="the Nodes panel's hint")
    press(page, "\ue015", "]")  # ↓ selects the node
    # Then the node runs one worker more
    until_true(lambda: cluster.workers() == 3, what="3 workers on the node")


def test_a_read_token_gives_a_read_only_console_that_refuses_keys(
    cluster: Cluster, page: webdriver.Chrome
) -> None:
    before = cluster.workers()
    # Given the login form: a wrong token is refused there, a read token signs in
    page.get(f"{cluster.server.url}/console/")
    sign_in(page, "wrong-token-0123456789")
    assert "That token is not valid." in page.page_source and not cluster.sessions()
    sign_in(page, READ_TOKEN)
    wait_for_screen(page, lambda s: "READ-ONLY" in s and "Queue" in s, what="READ-ONLY")
    press(page, "\t")
    wait_for_screen(page, lambda s: "] [ w" in s, what="the Nodes panel's hint")
    press(page, "\ue015", "]")
    wait_for_screen(page, lambda s: "is not allowed" in s, what="the refusal")
    assert cluster.workers() == before
    for session in cluster.sessions():  # the store in its environment, no HTTP tokens
        assert "--read-only" in session.cmdline()
        assert session.environ()["TASKDECK_STORE"] == str(cluster.store)
        assert "TASKDECK_HTTP_WRITE_TOKENS" not in session.environ()


def test_without_tokens_it_serves_loopback_only(tmp_path: Path) -> None:
    result = run("web", "--host", "0.0.0.0", "--store", "x.db", cwd=tmp_path)
    assert result.returncode != 0 and "without auth: configure tokens first" in result.stderr
    assert "Traceback" not in result.stderr


def sign_in(page: webdriver.Chrome, token: str) -> None:
    """Type ``token`` into the login form and send it; returns once the answer (a new
    page) has replaced the form (submit() does not wait for it)."""
    field = page.find_element(By.ID, "token")
    field.send_keys(token)
    field.submit()
    WebDriverWait(page, 15).until(staleness_of(field))


def test_no_token_or_a_wrong_one_runs_nothing(cluster: Cluster, page: webdriver.Chrome) -> None:
    url = cluster.server.url
    for path in ("/console/", "/console/?token=wrong-token-0123456789", "/console/ws"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + path, timeout=10)
        assert refused.value.code == 401, path
    assert websocket_status(url, "/console/ws") == 401
    assert fetch(url, "/console/static/js/textual.js") == 401
    assert fetch(url, "/console/static/js/textual.js", READ_TOKEN) == 200
    assert fetch(url, "/console/static/%2e%2e/__init__.py", READ_TOKEN) == 404  # only static/
    # a page on another site cannot open the websocket with the user's cookie
    cookie = f"Cookie: taskdeck_console={WRITE_TOKEN}"
    assert websocket_status(url, "/console/ws", cookie, "Origin: http://elsewhere.example") == 401
    page.get(f"{url}/console/")
    assert "Token" in page.page_source and page.title == "Taskdeck console: sign in"
    assert not cluster.sessions()
    # (while the same cookie from the same site opens it)
    assert websocket_status(url, "/console/ws", cookie, f"Origin: {url}") == 101  # the same site


def fetch(url: str, path: str, token: str | None = None) -> int:
    request = urllib.request.Request(url + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def websocket_status(url: str, path: str, *headers: str) -> int:
    """The status of a websocket handshake (with these extra header lines)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n".encode()
            + "".join(f"{h}\r\n" for h in headers).encode()
            + b"\r\n"
        )
        return int(conn.recv(200).split()[1])
