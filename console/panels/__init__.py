"""The console's panels, one widget per file. Panels read snapshots; they act only
through the engine's public API."""
