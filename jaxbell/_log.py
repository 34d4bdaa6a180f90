"""The ``jaxbell`` logger held at WARNING for a block (long runs that draw a progress bar)."""

from __future__ import annotations

import contextlib
import logging


@contextlib.contextmanager
def info_held_back():
    """Raise the ``jaxbell`` logger to WARNING for the block (its level restored after): a run
    that calls the library many times (a search step's envelopes, reproduce's ~100 search and
    grid calls) would otherwise print INFO lines that break its progress bar and are no news."""
    logger = logging.getLogger("jaxbell")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)
