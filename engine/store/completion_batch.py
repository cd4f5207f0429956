"""Splitting a batch of completions into give-backs and the rest, and putting the
parts' answers back together (both drivers)."""

from __future__ import annotations

from collections.abc import Sequence

from engine.store.base import Completion


def split_unstarted(completions: Sequence[Completion]) -> tuple[list[int], list[int]]:
    """Indexes of the give-backs of unstarted tasks, and of the other completions."""
    back = [i for i, c in enumerate(completions) if c.unstarted]
    return back, [i for i, c in enumerate(completions) if not c.unstarted]


def merged(
    *parts: tuple[Sequence[int], tuple[Sequence[int], Sequence[int]]],
) -> tuple[list[int], list[int]]:
    """The (applied, stale) indexes of a batch from its parts': each part is its
    indexes in the batch and its own (applied, stale) indexes into itself."""
    applied = sorted(index[i] for index, (done, _) in parts for i in done)
    stale = sorted(index[i] for index, (_, late) in parts for i in late)
    return applied, stale
