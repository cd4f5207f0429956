"""``engine.history``: durable metrics history (per minute, hour and day) and the
trends and statistics read from it. See :mod:`engine.history.part`."""
