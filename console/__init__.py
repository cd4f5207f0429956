"""Taskdeck's command line and (later) terminal console. Talks only to the engine's public API."""
