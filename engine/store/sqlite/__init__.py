"""The embedded default store: one SQLite file in WAL mode (see :mod:`.driver`)."""
