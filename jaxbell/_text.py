"""Counts and ranges in messages: "1 block", "2 blocks", "from A to B" or "A" alone."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 block``, ``2 blocks``, ``1,024 points``: a count with its noun in the right number."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def value_span(low: float, high: float, fmt: str = ".6g") -> str:
    """``from A to B``, or ``A`` alone when both ends print the same."""
    a, b = format(low, fmt), format(high, fmt)
    return a if a == b else f"from {a} to {b}"
