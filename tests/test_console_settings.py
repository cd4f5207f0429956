"""The console's settings screen says where each value comes from (default, file, env,
flag, runtime) and who changed it at runtime and when; ``ctrl+r`` resets the focused
setting for every node (back to the file's value)."""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

from textual.widgets import Button, Input, Label

from console.app import ConsoleApp
from console.screens.settings import SettingsScreen
from engine import Engine, load_config

from .console_helpers import settle, started, text_of, toasts


async def test_the_settings_screen_shows_sources_and_resets_one(
    db_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "taskdeck.toml"
    path.write_text("[engine]\nresult_ttl = 900\nlease_ttl = 20\n", encoding="utf-8")
    config = load_config(path, environ={})
    # someone changed result_ttl from the command line before the console opened
    cli = Engine(db_path, workers=0, config=config, interface="cli")
    async with cli.client():
        await cli.update_settings(result_ttl=60)

    engine = Engine(db_path, workers=1, config=config, interface="console", poll_interval=0.05)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        assert engine.settings.result_ttl == 60  # the engine started from the saved change
        await pilot.press("s")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SettingsScreen)

        def label(name: str) -> str:
            return " ".join(text_of(screen.query_one(f"#name-{name}", Label)).split())

        who = f"{getpass.getuser()}@{socket.gethostname()}"
        assert label("result_ttl").startswith(f"result_ttl runtime · {who} (cli), ")
        assert label("result_ttl").endswith("ago · ctrl+r: back to 900 s (file)")
        assert label("lease_ttl") == "lease_ttl file"
        assert label("failed_ttl") == "failed_ttl default"
        assert screen.query_one("#in-result_ttl", Input).value == "60"
        assert "ctrl+r resets the focused one" in text_of(screen.query_one(".dialog-title"))

        # ctrl+r on a field that is no setting says what to do
        screen.query_one("#apply", Button).focus()
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert "move to a setting's field first (tab), then ctrl+r" in toasts(app)

        screen.query_one("#in-result_ttl", Input).focus()
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert screen.query_one("#in-result_ttl", Input).value == "900"
        assert engine.settings.result_ttl == 900
        assert "result_ttl reset to 900 s, for every node" in toasts(app)
        assert label("result_ttl") == "result_ttl file"
        info = {i.name: i for i in await engine.settings_info()}
        assert (info["result_ttl"].source, info["result_ttl"].changed_by) == ("file", None)
        await pilot.press("escape")

    again = Engine(db_path, workers=1, config=config)
    async with again:
        assert again.settings.result_ttl == 900  # the reset is in the store
