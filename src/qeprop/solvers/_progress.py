"""Progress of long equilibrium solves, for a caller that shows it (solvers never print).

A large matrix-free gradient is minutes of Lanczos steps (22 qubits: about 650 products of
0.13 s each). :func:`observe` installs an observer for the solves run inside a ``with`` block,
in this thread or task (a :class:`contextvars.ContextVar`, so concurrent sweeps and Dask workers
are not affected); the backends call the module's ``solve_started`` at the seam,
``lanczos_step`` once per product of the matrix-free Lanczos solver and ``dmrg_sweep`` once per
half-sweep of DMRG. An observer may leave out methods whose events it does not want. Without an
observer each call is one context-variable lookup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Protocol

__all__ = ["ProgressObserver", "dmrg_sweep", "lanczos_step", "observe", "solve_started"]


class ProgressObserver(Protocol):
    """What :func:`observe` calls; both methods must return quickly and must not raise."""

    def solve_started(self, backend: str, kind: str, count: int = 1) -> None:
        """``count`` solves of ``kind`` states (``ground``, ``thermal``, ...) start on ``backend``
        (more than one: side by side, e.g. the two nudged states of a centred gradient in DMRG
        threads, whose steps are not reported)."""

    def lanczos_step(self, level: int, products: int, residual: float, target: float) -> None:
        """A Lanczos step of level ``level`` (0: ground level) is done.

        ``products``: products with ``H`` spent on this level so far (restarts included);
        ``residual``: the step's estimate ``|β_j s_j| / max(1, |θ|)`` of the relative residual of
        the lowest Ritz pair; ``target``: the relative residual at which the level stops.
        """

    def dmrg_sweep(self, sites: int, energy: float, bond_dim: int) -> None:
        """A DMRG half-sweep of ``sites``-site updates (1 or 2) is done; ``energy`` is that of its
        last local update without the identity part of ``H`` (differences between sweeps are
        what it tells), ``bond_dim`` the largest bond dimension of the MPS after it."""


_OBSERVER: ContextVar[ProgressObserver | None] = ContextVar("qeprop_progress", default=None)


@contextlib.contextmanager
def observe(observer: ProgressObserver | None) -> Iterator[None]:
    """Report the solves inside the block to ``observer`` (``None``: report nothing)."""
    token = _OBSERVER.set(observer)
    try:
        yield
    finally:
        _OBSERVER.reset(token)


def solve_started(backend: str, kind: str, count: int = 1) -> None:
    """Called by the solver seam when a solve starts (by a backend's ``solve_many`` for the
    solves it runs together)."""
    obs = _OBSERVER.get()
    if obs is not None and hasattr(obs, "solve_started"):
        obs.solve_started(backend, kind, count)


def lanczos_step(level: int, products: int, residual: float, target: float) -> None:
    """Called by the matrix-free Lanczos solver after each step."""
    obs = _OBSERVER.get()
    if obs is not None and hasattr(obs, "lanczos_step"):
        obs.lanczos_step(level, products, residual, target)


def dmrg_sweep(sites: int, energy: float, bond_dim: int) -> None:
    """Called by the DMRG sweeper after each half-sweep."""
    obs = _OBSERVER.get()
    if obs is not None and hasattr(obs, "dmrg_sweep"):
        obs.dmrg_sweep(sites, energy, bond_dim)
