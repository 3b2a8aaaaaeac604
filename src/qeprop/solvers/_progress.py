"""Progress of long equilibrium solves, for a caller that shows it (solvers never print).

A large matrix-free gradient is minutes of Lanczos steps (22 qubits: about 650 products of
0.13 s each). :func:`observe` installs an observer for the solves run inside a ``with`` block,
in this thread or task (a :class:`contextvars.ContextVar`, so concurrent sweeps and Dask workers
are not affected); the backends call the module's ``solve_started`` at the seam and
``lanczos_step`` once per product of the matrix-free Lanczos solver. Without an observer each call
is one context-variable lookup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Protocol

__all__ = ["ProgressObserver", "lanczos_step", "observe", "solve_started"]


class ProgressObserver(Protocol):
    """What :func:`observe` calls; both methods must return quickly and must not raise."""

    def solve_started(self, backend: str, kind: str) -> None:
        """A solve of a ``kind`` state (``ground``, ``thermal``, ...) starts on ``backend``."""

    def lanczos_step(self, level: int, products: int, residual: float, target: float) -> None:
        """A Lanczos step of level ``level`` (0: ground level) is done.

        ``products``: products with ``H`` spent on this level so far (restarts included);
        ``residual``: the step's estimate ``|β_j s_j| / max(1, |θ|)`` of the relative residual of
        the lowest Ritz pair; ``target``: the relative residual at which the level stops.
        """


_OBSERVER: ContextVar[ProgressObserver | None] = ContextVar("qeprop_progress", default=None)


@contextlib.contextmanager
def observe(observer: ProgressObserver | None) -> Iterator[None]:
    """Report the solves inside the block to ``observer`` (``None``: report nothing)."""
    token = _OBSERVER.set(observer)
    try:
        yield
    finally:
        _OBSERVER.reset(token)


def solve_started(backend: str, kind: str) -> None:
    """Called by the solver seam when a solve starts."""
    obs = _OBSERVER.get()
    if obs is not None:
        obs.solve_started(backend, kind)


def lanczos_step(level: int, products: int, residual: float, target: float) -> None:
    """Called by the matrix-free Lanczos solver after each step."""
    obs = _OBSERVER.get()
    if obs is not None:
        obs.lanczos_step(level, products, residual, target)
