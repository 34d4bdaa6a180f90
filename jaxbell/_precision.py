"""Precision control: float64 where the caller asks for it, without a global switch."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax
import numpy as np
from jax.typing import DTypeLike

__all__ = ["x64_scope"]


@contextlib.contextmanager
def x64_scope(dtype: DTypeLike = np.float64) -> Iterator[None]:
    """Enable JAX's 64-bit mode inside the block when ``dtype`` is float64 (no global change)."""
    if np.dtype(dtype) == np.float64 and not jax.config.jax_enable_x64:
        enable = getattr(jax, "enable_x64", None)
        if enable is None:  # jax < 0.8
            from jax.experimental import enable_x64 as enable
        with enable(True):
            yield
    else:
        yield
